//! `TargetClient`: the only place that names the HTTP client library.

use std::time::Duration;

use awc::error::{ConnectError, SendRequestError};
use awc::http::header;

use super::mix::Endpoint;
use super::ring::OrderId;
use crate::config::TargetUrl;
use crate::metrics::ErrorKind;

/// Largest answer body read; the rest is not read and the connection is
/// dropped, so a target sending huge bodies cannot grow our memory.
const MAX_BODY_BYTES: usize = 256 * 1024;

/// One request of the mix, with its data drawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    CreateOrder { product_id: u8, quantity: u8 },
    ListOrders,
    GetOrder(OrderId),
}

impl Request {
    pub fn endpoint(&self) -> Endpoint {
        match self {
            Request::CreateOrder { .. } => Endpoint::CreateOrder,
            Request::ListOrders => Endpoint::ListOrders,
            Request::GetOrder(_) => Endpoint::GetOrder,
        }
    }
}

/// What became of a request.
#[derive(Debug)]
pub enum Outcome {
    /// The target answered. `created` is the id of a successful create.
    Answered { status: u16, created: Option<OrderId> },
    /// No answer; `reason` is for the log only (never a label).
    Failed { kind: ErrorKind, reason: String },
}

pub struct TargetClient {
    client: awc::Client,
    orders_url: String,
    timeout: Duration,
}

impl TargetClient {
    /// Must be called on the thread that will send (the client is `!Send`).
    pub fn new(target: &TargetUrl, timeout: Duration, max_in_flight: usize) -> Self {
        // awc would otherwise cap connections at 100 and queue the rest in
        // its pool: a hidden queue. Our in-flight bound decides instead.
        let connector = awc::Connector::new().limit(max_in_flight).timeout(timeout);
        let client = awc::Client::builder()
            .connector(connector)
            // The whole exchange is bounded by one timer in `send`.
            .disable_timeout()
            // A 302 from the target must never move our load to another host.
            .disable_redirects()
            .no_default_headers()
            .add_default_header((header::USER_AGENT, concat!("trafficgen/", env!("CARGO_PKG_VERSION"))))
            .finish();
        TargetClient { client, orders_url: format!("{target}/orders"), timeout }
    }

    pub async fn send(&self, request: &Request) -> Outcome {
        match actix_rt::time::timeout(self.timeout, self.exchange(request)).await {
            Ok(outcome) => outcome,
            Err(_) => {
                Outcome::Failed { kind: ErrorKind::Timeout, reason: format!("no answer within {:?}", self.timeout) }
            }
        }
    }

    async fn exchange(&self, request: &Request) -> Outcome {
        let sent = match request {
            Request::CreateOrder { product_id, quantity } => {
                let body = format!(r#"{{"product_id":{product_id},"quantity":{quantity}}}"#);
                self.client
                    .post(&self.orders_url)
                    .insert_header((header::CONTENT_TYPE, "application/json"))
                    .send_body(body)
                    .await
            }
            Request::ListOrders => self.client.get(&self.orders_url).send().await,
            Request::GetOrder(id) => self.client.get(format!("{}/{}", self.orders_url, id.as_str())).send().await,
        };
        let mut response = match sent {
            Ok(response) => response,
            Err(e) => return Outcome::Failed { kind: classify(&e), reason: e.to_string() },
        };
        let status = response.status();
        // Read the body so the connection can be reused; a body that fails
        // or is too long still leaves the status as the answer.
        let body = response.body().limit(MAX_BODY_BYTES).await.ok();
        let created = match (request, body) {
            (Request::CreateOrder { .. }, Some(body)) if status.is_success() => created_id(&body),
            _ => None,
        };
        Outcome::Answered { status: status.as_u16(), created }
    }
}

/// The `id` of a create answer, if it has a usable one.
fn created_id(body: &[u8]) -> Option<OrderId> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    OrderId::from_json(value.get("id")?)
}

fn classify(error: &SendRequestError) -> ErrorKind {
    match error {
        SendRequestError::Timeout | SendRequestError::Connect(ConnectError::Timeout) => ErrorKind::Timeout,
        SendRequestError::Connect(_) => ErrorKind::Connect,
        _ => ErrorKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_id_reads_the_id_of_a_create_answer() {
        assert_eq!(created_id(br#"{"id":42,"status":"created"}"#).unwrap().as_str(), "42");
        assert_eq!(created_id(br#"{"id":"ord-7"}"#).unwrap().as_str(), "ord-7");
        assert_eq!(created_id(br#"{"status":"created"}"#), None);
        assert_eq!(created_id(b"<html>not json</html>"), None);
        assert_eq!(created_id(br#"{"id":"../../admin"}"#), None);
    }
}
