//! Small JSON helpers shared by the APIs.

/// A rate as JSON: whole numbers without a fraction (`20`, not `20.0`), as
/// users write them.
pub fn rate_value(rps: f64) -> serde_json::Value {
    if rps.fract() == 0.0 && rps.abs() < 1e15 {
        serde_json::Value::from(rps as i64)
    } else {
        serde_json::Number::from_f64(rps).map_or(serde_json::Value::Null, serde_json::Value::Number)
    }
}

/// `serialize_with` form of [`rate_value`].
pub fn serialize_rate<S: serde::Serializer>(rps: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    serde::Serialize::serialize(&rate_value(*rps), serializer)
}

/// The `/health` answer of the sidecar and the demo target. A struct, not a
/// JSON map (which sorts its keys), so the keys come out in the order the
/// contract and the README print: `{"status":"healthy","service":"…"}`.
#[derive(Debug, serde::Serialize)]
pub struct Health {
    pub status: &'static str,
    pub service: &'static str,
}

impl Health {
    pub fn healthy(service: &'static str) -> Self {
        Health { status: "healthy", service }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_rates_have_no_fraction() {
        assert_eq!(rate_value(20.0).to_string(), "20");
        assert_eq!(rate_value(0.5).to_string(), "0.5");
        assert_eq!(rate_value(0.0).to_string(), "0");
    }

    #[test]
    fn health_keeps_its_key_order() {
        let json = serde_json::to_string(&Health::healthy("traffic-generator")).unwrap();
        assert_eq!(json, r#"{"status":"healthy","service":"traffic-generator"}"#);
    }
}
