//! Timed modes and ramps without a job: `POST /mode/burst?duration_secs=60`
//! (burst for a minute, then back to the mode before) and
//! `POST /mode/custom {"rps": 500, "ramp_secs": 30}` (a straight line from
//! the current rate). The board keeps the return; this reads the requests.

use std::time::Duration;

use serde_json::Value;

use super::JobError;
use crate::engine::mode::check_rate;
use crate::engine::stages::Stages;

/// Longest timed mode and longest ramp, seconds (a day, as for jobs).
pub const MAX_TIMED_SECS: f64 = 86_400.0;
/// Shortest timed mode, seconds.
pub const MIN_TIMED_SECS: f64 = 1.0;

/// The `duration_secs` of a mode switch's query string (`None` without
/// one). Any other parameter is refused, so a typo does not silently make
/// a switch permanent.
pub fn duration_from_query(query: &str) -> Result<Option<Duration>, JobError> {
    let mut duration = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key != "duration_secs" {
            return Err(JobError::invalid(
                "query",
                format!("unknown parameter '{}'; allowed: duration_secs", key.chars().take(64).collect::<String>()),
            ));
        }
        if duration.is_some() {
            return Err(JobError::invalid("duration_secs", "is given twice"));
        }
        let secs =
            value.parse::<f64>().ok().filter(|s| (MIN_TIMED_SECS..=MAX_TIMED_SECS).contains(s)).ok_or_else(|| {
                JobError::invalid(
                    "duration_secs",
                    format!(
                        "must be a number of seconds from {MIN_TIMED_SECS} to {MAX_TIMED_SECS} (24 h), not '{}'",
                        value.chars().take(64).collect::<String>()
                    ),
                )
            })?;
        duration = Some(Duration::from_secs_f64(secs));
    }
    Ok(duration)
}

/// A checked `POST /mode/custom` body.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CustomChange {
    pub rps: f64,
    /// Seconds to get there in a straight line from the current rate.
    pub ramp_secs: Option<f64>,
}

impl CustomChange {
    /// `{"rps": N}` or `{"rps": N, "ramp_secs": S}`, `rps` within `0..=max_rps`.
    pub fn parse(body: &[u8], max_rps: f64) -> Result<CustomChange, JobError> {
        let expected = format!(
            "expected a JSON body like {{\"rps\": 250}} or {{\"rps\": 250, \"ramp_secs\": 30}}, rps from 0 to {max_rps}"
        );
        if body.trim_ascii().is_empty() {
            return Err(JobError::BadJson(format!("POST /mode/custom needs a body; {expected}")));
        }
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| JobError::BadJson(format!("body is not valid JSON ({e}); {expected}")))?;
        let Value::Object(fields) = value else {
            return Err(JobError::invalid("body", format!("must be a JSON object; {expected}")));
        };
        if let Some(unknown) = fields.keys().find(|k| !["rps", "ramp_secs"].contains(&k.as_str())) {
            return Err(JobError::invalid(
                "body",
                format!("unknown field '{}'; {expected}", unknown.chars().take(64).collect::<String>()),
            ));
        }
        let number = |field: &str| -> Result<Option<f64>, JobError> {
            match fields.get(field) {
                None => Ok(None),
                Some(v) => v.as_f64().filter(|x| x.is_finite()).map(Some).ok_or_else(|| {
                    JobError::invalid(
                        field,
                        format!("must be a number, not {}", v.to_string().chars().take(64).collect::<String>()),
                    )
                }),
            }
        };
        let rps = number("rps")?.ok_or_else(|| JobError::invalid("rps", format!("is required; {expected}")))?;
        let rps = check_rate(rps, max_rps).map_err(|e| JobError::invalid("rps", e.to_string()))?;
        let ramp_secs = number("ramp_secs")?;
        if let Some(secs) = ramp_secs
            && !(0.0..=MAX_TIMED_SECS).contains(&secs)
        {
            return Err(JobError::invalid(
                "ramp_secs",
                format!("must be from 0 to {MAX_TIMED_SECS} seconds (24 h), not {}", crate::base::number::Shown(secs)),
            ));
        }
        Ok(CustomChange { rps, ramp_secs: ramp_secs.filter(|s| *s > 0.0) })
    }

    /// The schedule from `current_rps`: a straight line to the new rate,
    /// then the new rate held (without a ramp, the new rate at once).
    pub fn stages(&self, current_rps: f64) -> Stages {
        Stages::ramp_then_hold(self.ramp_secs.unwrap_or(0.0), current_rps, self.rps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duration_in_the_query_makes_a_switch_timed() {
        assert_eq!(duration_from_query(""), Ok(None));
        assert_eq!(duration_from_query("duration_secs=60"), Ok(Some(Duration::from_secs(60))));
        assert_eq!(duration_from_query("duration_secs=1.5&"), Ok(Some(Duration::from_millis(1500))));
        for (query, field) in [
            ("duration_secs=0", "duration_secs"),
            ("duration_secs=86401", "duration_secs"),
            ("duration_secs=NaN", "duration_secs"),
            ("duration_secs=inf", "duration_secs"),
            ("duration_secs=", "duration_secs"),
            ("duration_secs", "duration_secs"),
            ("duration_secs=5&duration_secs=6", "duration_secs"),
            ("duration=60", "query"),
            ("duration_secs=5&x=1", "query"),
        ] {
            match duration_from_query(query) {
                Err(JobError::Invalid { field: f, .. }) => assert_eq!(f, field, "{query}"),
                other => panic!("{query}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_custom_body_may_ramp_from_the_current_rate() {
        let change = CustomChange::parse(br#"{"rps": 500, "ramp_secs": 30}"#, 1000.0).unwrap();
        assert_eq!(change, CustomChange { rps: 500.0, ramp_secs: Some(30.0) });
        let stages = change.stages(20.0);
        assert_eq!(stages.rate_at(0.0), 20.0);
        assert_eq!(stages.rate_at(15.0), 260.0);
        assert_eq!(stages.rate_at(30.0), 500.0);
        assert_eq!(stages.rate_at(1e6), 500.0);
        // Without a ramp (or a ramp of 0): the new rate at once.
        for body in [&br#"{"rps": 250}"#[..], br#"{"rps": 250, "ramp_secs": 0}"#] {
            let change = CustomChange::parse(body, 1000.0).unwrap();
            assert_eq!(change.ramp_secs, None);
            assert_eq!(change.stages(20.0).rate_at(0.0), 250.0);
        }
    }

    #[test]
    fn bad_custom_bodies_name_their_field() {
        let cases: &[(&[u8], Option<&str>)] = &[
            (b"", None),
            (b"{", None),
            (b"[250]", Some("body")),
            (br#"{"rps": 250, "ramp": 3}"#, Some("body")),
            (br#"{"ramp_secs": 3}"#, Some("rps")),
            (br#"{"rps": "250"}"#, Some("rps")),
            (br#"{"rps": 1001}"#, Some("rps")),
            (br#"{"rps": -1}"#, Some("rps")),
            (br#"{"rps": 5, "ramp_secs": -1}"#, Some("ramp_secs")),
            (br#"{"rps": 5, "ramp_secs": 86401}"#, Some("ramp_secs")),
            (br#"{"rps": 5, "ramp_secs": null}"#, Some("ramp_secs")),
        ];
        for (body, field) in cases {
            match (CustomChange::parse(body, 1000.0), field) {
                (Err(JobError::BadJson(_)), None) => {}
                (Err(JobError::Invalid { field: f, .. }), Some(field)) => {
                    assert_eq!(&f, field, "{}", String::from_utf8_lossy(body))
                }
                (other, _) => panic!("{}: {other:?}", String::from_utf8_lossy(body)),
            }
        }
    }
}
