//! The engine's request code from before workloads existed — the order id
//! ring and the request template — kept as the oracle the built-in
//! workload is compared with byte for byte.

use std::fmt::Write as _;

use std::collections::VecDeque;

/// The last `capacity` order ids seen in create answers; the oldest falls
/// out when a new one comes in, so memory is fixed however long we run.
#[derive(Debug, Clone)]
pub struct OrderIdRing {
    ids: VecDeque<OrderId>,
    capacity: usize,
}

/// An order id as the target gave it, kept only if it is safe to put in a
/// URL path segment as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderId(String);

impl OrderId {
    const MAX_LEN: usize = 64;

    /// Reads the `id` of a create answer: a JSON number or a string of
    /// URL-safe characters. Anything else is not remembered.
    pub fn from_json(value: &serde_json::Value) -> Option<OrderId> {
        match value {
            serde_json::Value::Number(n) => Some(OrderId(n.to_string())),
            serde_json::Value::String(s) => Self::parse(s),
            _ => None,
        }
    }

    pub fn parse(s: &str) -> Option<OrderId> {
        let safe = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~');
        (!s.is_empty() && s.len() <= Self::MAX_LEN && s.chars().all(safe) && s != "." && s != "..")
            .then(|| OrderId(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl OrderIdRing {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        OrderIdRing { ids: VecDeque::with_capacity(capacity), capacity }
    }

    pub fn push(&mut self, id: OrderId) {
        if self.ids.len() == self.capacity {
            self.ids.pop_front();
        }
        self.ids.push_back(id);
    }

    /// The id at `roll % len`, or `None` while the ring is empty.
    pub fn pick(&self, roll: usize) -> Option<&OrderId> {
        if self.ids.is_empty() {
            return None;
        }
        self.ids.get(roll % self.ids.len())
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// The fixed parts of every request to one target, rendered once.
#[derive(Debug, Clone)]
pub struct RequestTemplate {
    /// `/prefix/orders`, the path every request starts with.
    orders_path: String,
    /// `Host`, `User-Agent` lines, ending in CRLF.
    common_headers: String,
}

impl RequestTemplate {
    pub fn new(authority: &str, path_prefix: &str, user_agent: &str) -> Self {
        RequestTemplate {
            orders_path: format!("{path_prefix}/orders"),
            common_headers: format!("Host: {authority}\r\nUser-Agent: {user_agent}\r\n"),
        }
    }

    /// `POST {prefix}/orders` with a JSON body.
    pub fn post_orders(&self, out: &mut Vec<u8>, json: &[u8]) {
        self.head(out, "POST", None);
        let _ = write!(Buf(out), "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n", json.len());
        out.extend_from_slice(json);
    }

    /// `GET {prefix}/orders` or `GET {prefix}/orders/{id}`.
    pub fn get_orders(&self, out: &mut Vec<u8>, id: Option<&str>) {
        self.head(out, "GET", id);
        out.extend_from_slice(b"\r\n");
    }

    fn head(&self, out: &mut Vec<u8>, method: &str, id: Option<&str>) {
        out.clear();
        out.extend_from_slice(method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.orders_path.as_bytes());
        if let Some(id) = id {
            out.push(b'/');
            out.extend_from_slice(id.as_bytes());
        }
        out.extend_from_slice(b" HTTP/1.1\r\n");
        out.extend_from_slice(self.common_headers.as_bytes());
    }
}

/// `write!` into a byte vector.
struct Buf<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Buf<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn id(n: u32) -> OrderId {
        OrderId::parse(&n.to_string()).unwrap()
    }

    #[test]
    fn keeps_only_the_newest_ids() {
        let mut ring = OrderIdRing::new(3);
        for n in 1..=5 {
            ring.push(id(n));
        }
        assert_eq!(ring.len(), 3);
        let kept: Vec<&str> = (0..3).map(|i| ring.pick(i).unwrap().as_str()).collect();
        assert_eq!(kept, ["3", "4", "5"]);
    }

    #[test]
    fn an_empty_ring_has_nothing_to_pick() {
        let ring = OrderIdRing::new(5);
        assert!(ring.is_empty());
        assert_eq!(ring.pick(42), None);
    }

    #[test]
    fn picks_wrap_around_the_ring() {
        let mut ring = OrderIdRing::new(4);
        ring.push(id(10));
        ring.push(id(11));
        assert_eq!(ring.pick(5).unwrap().as_str(), "11");
    }

    #[test]
    fn reads_numeric_and_safe_string_ids_only() {
        assert_eq!(OrderId::from_json(&json!(17)).unwrap().as_str(), "17");
        assert_eq!(OrderId::from_json(&json!("a1b2-c3_d.e~")).unwrap().as_str(), "a1b2-c3_d.e~");
        for bad in
            [json!("a/b"), json!("x y"), json!(""), json!(".."), json!(null), json!({"id": 1}), json!("x".repeat(65))]
        {
            assert_eq!(OrderId::from_json(&bad), None, "{bad}");
        }
    }

    #[test]
    fn renders_requests_with_the_contract_headers() {
        let t = RequestTemplate::new("shop:8080", "/api", "trafficgen/1.0");
        let mut out = Vec::new();
        t.post_orders(&mut out, br#"{"product_id":3,"quantity":2}"#);
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "POST /api/orders HTTP/1.1\r\nHost: shop:8080\r\nUser-Agent: trafficgen/1.0\r\nContent-Type: application/json\r\nContent-Length: 29\r\n\r\n{\"product_id\":3,\"quantity\":2}"
        );
        t.get_orders(&mut out, Some("17"));
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "GET /api/orders/17 HTTP/1.1\r\nHost: shop:8080\r\nUser-Agent: trafficgen/1.0\r\n\r\n"
        );
        let t = RequestTemplate::new("nginx", "", "ua");
        t.get_orders(&mut out, None);
        assert!(out.starts_with(b"GET /orders HTTP/1.1\r\nHost: nginx\r\n"));
    }
}
