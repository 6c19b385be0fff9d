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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_rates_have_no_fraction() {
        assert_eq!(rate_value(20.0).to_string(), "20");
        assert_eq!(rate_value(0.5).to_string(), "0.5");
        assert_eq!(rate_value(0.0).to_string(), "0");
    }
}
