//! The bounded memory of recently created order ids.

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

    pub fn capacity(&self) -> usize {
        self.capacity
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
}
