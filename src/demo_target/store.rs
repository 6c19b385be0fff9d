//! The demo target's orders: in memory, bounded, newest last.

use std::collections::VecDeque;

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Order {
    pub id: u64,
    pub product_id: u32,
    pub quantity: u32,
    pub status: &'static str,
}

/// Keeps the last `capacity` orders. Ids only grow, so the deque is sorted
/// by id and a lookup is a binary search; no second index to keep in step.
#[derive(Debug)]
pub struct OrderStore {
    orders: VecDeque<Order>,
    next_id: u64,
    capacity: usize,
}

impl OrderStore {
    pub fn new(capacity: usize) -> Self {
        OrderStore { orders: VecDeque::new(), next_id: 1, capacity: capacity.max(1) }
    }

    pub fn create(&mut self, product_id: u32, quantity: u32) -> Order {
        let order = Order { id: self.next_id, product_id, quantity, status: "created" };
        self.next_id += 1;
        if self.orders.len() == self.capacity {
            self.orders.pop_front();
        }
        self.orders.push_back(order.clone());
        order
    }

    pub fn get(&self, id: u64) -> Option<&Order> {
        self.orders.binary_search_by_key(&id, |o| o.id).ok().map(|i| &self.orders[i])
    }

    /// Up to `limit` orders, newest first.
    pub fn recent(&self, limit: usize) -> Vec<Order> {
        self.orders.iter().rev().take(limit).cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.orders.len()
    }

    pub fn is_empty(&self) -> bool {
        self.orders.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_increasing() {
        let mut store = OrderStore::new(10);
        let ids: Vec<u64> = (0..5).map(|_| store.create(1, 1).id).collect();
        assert_eq!(ids, [1, 2, 3, 4, 5]);
    }

    #[test]
    fn keeps_only_the_last_orders_and_forgets_the_rest() {
        let mut store = OrderStore::new(3);
        for q in 1..=5 {
            store.create(7, q);
        }
        assert_eq!(store.len(), 3);
        assert_eq!(store.get(2), None);
        assert_eq!(store.get(3).map(|o| o.quantity), Some(3));
        assert_eq!(store.get(5).map(|o| o.id), Some(5));
        assert_eq!(store.get(6), None);
    }

    #[test]
    fn recent_lists_newest_first() {
        let mut store = OrderStore::new(10);
        for _ in 0..4 {
            store.create(1, 1);
        }
        let ids: Vec<u64> = store.recent(2).iter().map(|o| o.id).collect();
        assert_eq!(ids, [4, 3]);
    }
}
