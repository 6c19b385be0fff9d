//! The demo target's login: `POST /login` issues a bearer token (any user
//! name, password `demo`), `GET /account` requires one, and users created
//! with one belong to its account. The tokens kept are bounded in number
//! and age, so a client logging in in a loop cannot grow the target's
//! memory. Successful logins are counted per user name (bounded), for
//! tests that check each account logged in exactly once.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, web};
use rand::RngExt;
use serde::Deserialize;
use serde_json::json;

use super::{DemoState, json_body};

/// The one password the demo target accepts.
pub const PASSWORD: &str = "demo";
/// Tokens kept; the oldest is forgotten when a new one is issued.
pub const MAX_TOKENS: usize = 10_000;
/// User names whose logins are counted one by one; the rest are counted together.
pub const MAX_COUNTED_USERS: usize = 100_000;
/// How long a token is good for, unless `DEMO_TOKEN_TTL_SECS` says.
pub const TOKEN_TTL: Duration = Duration::from_secs(900);

#[derive(Debug)]
struct Session {
    username: String,
    issued: Instant,
}

#[derive(Debug)]
pub struct TokenStore {
    sessions: HashMap<String, Session>,
    /// Tokens in the order they were issued, to forget the oldest.
    order: VecDeque<String>,
    capacity: usize,
    ttl: Duration,
}

impl TokenStore {
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        TokenStore { sessions: HashMap::new(), order: VecDeque::new(), capacity: capacity.max(1), ttl }
    }

    /// A new random token for `username`.
    pub fn issue(&mut self, username: &str, now: Instant) -> String {
        let token = format!("{:032x}", rand::rng().random::<u128>());
        if self.order.len() == self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.sessions.remove(&oldest);
        }
        self.order.push_back(token.clone());
        self.sessions.insert(token.clone(), Session { username: username.to_string(), issued: now });
        token
    }

    /// The user name of a live token.
    pub fn check(&self, token: &str, now: Instant) -> Option<&str> {
        let session = self.sessions.get(token)?;
        (now.saturating_duration_since(session.issued) < self.ttl).then_some(session.username.as_str())
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Forgets every token; returns how many there were.
    pub fn revoke_all(&mut self) -> usize {
        let n = self.sessions.len();
        self.sessions.clear();
        self.order.clear();
        n
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }
}

/// Successful logins per user name, bounded.
#[derive(Debug, Default)]
pub struct LoginCounts {
    by_user: HashMap<String, u64>,
    /// Logins of names beyond [`MAX_COUNTED_USERS`].
    others: u64,
}

impl LoginCounts {
    pub fn count(&mut self, username: &str) {
        let room = self.by_user.len() < MAX_COUNTED_USERS;
        match self.by_user.get_mut(username) {
            Some(n) => *n += 1,
            None if room => {
                self.by_user.insert(username.to_string(), 1);
            }
            None => self.others += 1,
        }
    }
}

/// `GET /stats/logins`: successful logins per user name.
pub(super) async fn login_counts(state: web::Data<DemoState>) -> HttpResponse {
    let counts = state.logins.lock();
    let total: u64 = counts.by_user.values().sum::<u64>() + counts.others;
    HttpResponse::Ok().json(json!({
        "total": total,
        "users": counts.by_user.len(),
        "by_user": counts.by_user,
        "others": counts.others,
    }))
}

/// `POST /admin/revoke-tokens`: every token stops working at once, as
/// when an auth service restarts and forgets its sessions (for tests of
/// clients that must log in again).
pub(super) async fn revoke_tokens(state: web::Data<DemoState>) -> HttpResponse {
    let revoked = state.tokens.lock().revoke_all();
    HttpResponse::Ok().json(json!({"revoked": revoked}))
}

/// Who a request comes from: `Ok(None)` without `Authorization`, the
/// user name of a live bearer token, or a 401 for any other token.
pub(super) fn caller(state: &DemoState, req: &HttpRequest) -> Result<Option<String>, Box<HttpResponse>> {
    let Some(value) = req.headers().get("authorization") else { return Ok(None) };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    match token.and_then(|t| state.tokens.lock().check(t, Instant::now()).map(str::to_string)) {
        Some(username) => Ok(Some(username)),
        None => Err(Box::new(unauthorized("unknown or expired token"))),
    }
}

pub(super) fn unauthorized(message: &str) -> HttpResponse {
    HttpResponse::Unauthorized().insert_header(("WWW-Authenticate", "Bearer")).json(json!({"error": message}))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    username: String,
    password: String,
}

pub(super) async fn login(state: web::Data<DemoState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    const ROUTE: &str = "login";
    if let Some(failure) = state.faults(&req).await {
        return state.counted(ROUTE, failure);
    }
    if Instant::now() < state.login_from {
        let starting = HttpResponse::ServiceUnavailable()
            .json(json!({"error": "the login is not ready yet (DEMO_LOGIN_FAIL_SECS)"}));
        return state.counted(ROUTE, starting);
    }
    let response = match json_body::<Login>(&body, r#"{"username": "…", "password": "…"}"#) {
        Err(response) => *response,
        Ok(login) if login.username.is_empty() || login.username.chars().count() > 100 => {
            HttpResponse::UnprocessableEntity().json(json!({"error": "username must be 1 to 100 characters"}))
        }
        Ok(login) if login.password != PASSWORD => {
            HttpResponse::Unauthorized().json(json!({"error": "wrong username or password"}))
        }
        Ok(login) => {
            state.logins.lock().count(&login.username);
            let token = state.tokens.lock().issue(&login.username, Instant::now());
            HttpResponse::Ok().json(json!({
                "token": token,
                "token_type": "Bearer",
                "expires_in": state.token_ttl.as_secs(),
            }))
        }
    };
    state.counted(ROUTE, response)
}

pub(super) async fn account(state: web::Data<DemoState>, req: HttpRequest) -> HttpResponse {
    const ROUTE: &str = "account";
    if let Some(failure) = state.faults(&req).await {
        return state.counted(ROUTE, failure);
    }
    let token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let unauthorized = |message: &str| {
        HttpResponse::Unauthorized().insert_header(("WWW-Authenticate", "Bearer")).json(json!({"error": message}))
    };
    let response = match token {
        None => unauthorized("this route needs `Authorization: Bearer <token>` (POST /login gives one)"),
        Some(token) => match state.tokens.lock().check(token, Instant::now()) {
            Some(username) => HttpResponse::Ok().json(json!({"username": username})),
            None => unauthorized("unknown or expired token"),
        },
    };
    state.counted(ROUTE, response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_bounded_and_expire() {
        let start = Instant::now();
        let mut store = TokenStore::new(2, Duration::from_secs(10));
        let first = store.issue("a", start);
        let second = store.issue("b", start);
        assert_eq!(store.check(&first, start), Some("a"));
        assert_ne!(first, second);
        let third = store.issue("c", start);
        assert_eq!(store.len(), 2);
        assert_eq!(store.check(&first, start), None, "the oldest was forgotten");
        assert_eq!(store.check(&third, start + Duration::from_secs(9)), Some("c"));
        assert_eq!(store.check(&third, start + Duration::from_secs(10)), None, "expired");
        assert_eq!(store.check("made-up", start), None);
    }
}
