//! The request mix: which endpoint each scheduled request goes to.

use std::fmt;
use std::str::FromStr;

/// One kind of request the generator sends. The label names are part of the
/// contract (metrics, `/status`, `MIX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    CreateOrder,
    ListOrders,
    GetOrder,
}

impl Endpoint {
    pub const ALL: [Endpoint; 3] = [Endpoint::CreateOrder, Endpoint::ListOrders, Endpoint::GetOrder];

    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::CreateOrder => "create_order",
            Endpoint::ListOrders => "list_orders",
            Endpoint::GetOrder => "get_order",
        }
    }

    /// Position in [`Endpoint::ALL`], for per-endpoint arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Endpoint {
    type Err = MixError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Endpoint::ALL.into_iter().find(|e| e.as_str() == s).ok_or_else(|| MixError::UnknownEndpoint(s.to_string()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MixError {
    #[error("unknown endpoint '{0}' (known: create_order, list_orders, get_order)")]
    UnknownEndpoint(String),
    #[error("'{0}' is not of the form endpoint=weight")]
    NotAPair(String),
    #[error("weight '{weight}' for {endpoint} is not a whole number from 0 to 1000000")]
    BadWeight { endpoint: Endpoint, weight: String },
    #[error("{0} is given twice")]
    Duplicate(Endpoint),
    #[error("the weights add up to 0; at least one must be positive")]
    ZeroTotal,
}

/// Relative weights of the endpoints, e.g. `create_order=60,list_orders=25,get_order=15`.
/// Endpoints left out get weight 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mix {
    weights: [u32; 3],
    total: u32,
}

const MAX_WEIGHT: u32 = 1_000_000;

impl Mix {
    pub fn new(weights: [u32; 3]) -> Result<Self, MixError> {
        let total: u32 = weights.iter().sum();
        if total == 0 {
            return Err(MixError::ZeroTotal);
        }
        Ok(Mix { weights, total })
    }

    pub fn weight(&self, endpoint: Endpoint) -> u32 {
        self.weights[endpoint.index()]
    }

    /// The sum of the weights; [`Mix::pick`] takes a roll below it.
    pub fn total(&self) -> u32 {
        self.total
    }

    /// The endpoint a roll in `0..total` lands on.
    pub fn pick(&self, roll: u32) -> Endpoint {
        let mut roll = roll % self.total;
        for endpoint in Endpoint::ALL {
            let w = self.weights[endpoint.index()];
            if roll < w {
                return endpoint;
            }
            roll -= w;
        }
        unreachable!("a roll below the total always lands on a weight")
    }
}

impl Default for Mix {
    fn default() -> Self {
        Mix { weights: [60, 25, 15], total: 100 }
    }
}

impl FromStr for Mix {
    type Err = MixError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut weights: [Option<u32>; 3] = [None; 3];
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part.split_once('=').ok_or_else(|| MixError::NotAPair(part.to_string()))?;
            let endpoint: Endpoint = name.trim().parse()?;
            let weight = weight.trim();
            let value = weight
                .parse::<u32>()
                .ok()
                .filter(|w| *w <= MAX_WEIGHT)
                .ok_or_else(|| MixError::BadWeight { endpoint, weight: weight.to_string() })?;
            let slot = &mut weights[endpoint.index()];
            if slot.replace(value).is_some() {
                return Err(MixError::Duplicate(endpoint));
            }
        }
        Mix::new(weights.map(|w| w.unwrap_or(0)))
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = Endpoint::ALL.iter().map(|e| format!("{e}={}", self.weight(*e))).collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_default_mix() {
        let mix: Mix = "create_order=60,list_orders=25,get_order=15".parse().unwrap();
        assert_eq!(mix, Mix::default());
        assert_eq!(mix.to_string(), "create_order=60,list_orders=25,get_order=15");
    }

    #[test]
    fn tolerates_spaces_and_leaves_missing_endpoints_at_zero() {
        let mix: Mix = " list_orders = 3 , get_order=1 ".parse().unwrap();
        assert_eq!(mix.weight(Endpoint::CreateOrder), 0);
        assert_eq!(mix.total(), 4);
    }

    #[test]
    fn rejects_bad_mixes_with_a_reason() {
        let cases = [
            ("create_order=60,delete_order=5", MixError::UnknownEndpoint("delete_order".into())),
            ("create_order", MixError::NotAPair("create_order".into())),
            ("create_order=-1", MixError::BadWeight { endpoint: Endpoint::CreateOrder, weight: "-1".into() }),
            ("create_order=1.5", MixError::BadWeight { endpoint: Endpoint::CreateOrder, weight: "1.5".into() }),
            ("create_order=1,create_order=2", MixError::Duplicate(Endpoint::CreateOrder)),
            ("create_order=0,list_orders=0", MixError::ZeroTotal),
            ("", MixError::ZeroTotal),
        ];
        for (input, expected) in cases {
            assert_eq!(input.parse::<Mix>(), Err(expected), "input {input:?}");
        }
    }

    #[test]
    fn every_roll_lands_in_proportion_to_the_weights() {
        let mix = Mix::default();
        let mut counts = [0u32; 3];
        for roll in 0..mix.total() {
            counts[mix.pick(roll).index()] += 1;
        }
        assert_eq!(counts, [60, 25, 15]);
    }

    #[test]
    fn zero_weight_endpoints_are_never_picked() {
        let mix: Mix = "get_order=1".parse().unwrap();
        assert!((0..10).all(|r| mix.pick(r) == Endpoint::GetOrder));
    }
}
