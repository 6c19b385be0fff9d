//! The runtime settings (`PUT /config`) as the sidecar checks them: the
//! start-up arguments with the changed values put in, validated again by
//! [`Config::try_from`], so a change and a start-up fail alike.

use std::sync::Arc;

use crate::app::config::Config;
use crate::state::{RuntimeConfig, RuntimeSettings};

/// The runtime part of a validated configuration.
pub fn runtime_config(config: &Config) -> RuntimeConfig {
    let engine = &config.engine;
    RuntimeConfig {
        steady_rps: engine.modes.steady,
        burst_rps: engine.modes.burst,
        overload_rps: engine.modes.overload,
        jitter: engine.jitter,
        request_timeout_ms: u64::try_from(engine.request_timeout.as_millis()).unwrap_or(u64::MAX),
        max_in_flight: engine.max_in_flight,
        stats_interval_secs: config.stats_interval.map_or(0.0, |d| d.as_secs_f64()),
    }
}

/// The runtime settings of `config`, each change checked as at start-up.
pub fn runtime_settings(config: &Config) -> RuntimeSettings {
    // File-backed settings are left out of these arguments: a change must
    // not read files (and the token has no part in it).
    let args = config.runtime_args.clone();
    let check = move |candidate: &RuntimeConfig| {
        let mut args = args.clone();
        args.steady_rps = candidate.steady_rps;
        args.burst_rps = candidate.burst_rps;
        args.overload_rps = candidate.overload_rps;
        args.jitter = candidate.jitter;
        args.request_timeout_ms = candidate.request_timeout_ms;
        args.max_in_flight = candidate.max_in_flight;
        args.stats_interval_secs = Some(candidate.stats_interval_secs);
        Config::try_from(args).map(|config| runtime_config(&config))
    };
    RuntimeSettings::new(runtime_config(config), Arc::new(check))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::cli::Cli;
    use crate::state::{ConfigChangeError, is_runtime_field};
    use clap::Parser;
    use serde_json::{Map, Value};
    use std::fs;

    fn args(flags: &[&str]) -> crate::app::cli::SidecarArgs {
        Cli::try_parse_from(std::iter::once("trafficgen").chain(flags.iter().copied())).expect("flags parse").sidecar
    }

    fn settings(flags: &[&str]) -> RuntimeSettings {
        runtime_settings(&Config::try_from(args(flags)).expect("valid start-up settings"))
    }

    fn refused(settings: &mut RuntimeSettings, body: &str) -> (String, String) {
        let before = settings.current();
        let result = settings.change(body.as_bytes());
        assert_eq!(settings.current(), before, "{body}: a refused change changed something");
        match result {
            Err(ConfigChangeError::Invalid { field, message }) => (field, message),
            other => panic!("{body}: expected a 422, got {other:?}"),
        }
    }

    #[test]
    fn a_peers_overrides_replace_ours_from_start_up_through_the_same_checks() {
        let mut s = settings(&["--max-rps", "500"]);
        s.change(br#"{"burst_rps": 40, "jitter": 0.1}"#).unwrap();
        let theirs: Map<String, Value> = serde_json::from_str(r#"{"steady_rps": 7}"#).unwrap();
        let config = s.replace_overrides(&theirs).unwrap();
        // Ours are gone: start-up with theirs put in.
        assert_eq!(config, RuntimeConfig { steady_rps: 7.0, ..s.startup() });
        let ours = s.overrides();
        assert_eq!((ours.len(), ours["steady_rps"].as_f64()), (1, Some(7.0)), "{ours:?}");
        // Checked as PUT /config checks: over MAX_RPS, or unknown, changes nothing.
        let before = s.current();
        for bad in [r#"{"steady_rps": 501}"#, r#"{"workers": 3}"#, r#"{"max_in_flight": 100000}"#] {
            let bad: Map<String, Value> = serde_json::from_str(bad).unwrap();
            assert!(matches!(s.replace_overrides(&bad), Err(ConfigChangeError::Invalid { .. })), "{bad:?}");
            assert_eq!(s.current(), before, "{bad:?}");
        }
        // A reset elsewhere: no overrides, start-up again.
        assert_eq!(s.replace_overrides(&Map::new()).unwrap(), s.startup());
        assert!(is_runtime_field("steady_rps") && !is_runtime_field("target_url"));
    }

    #[test]
    fn a_change_takes_the_fields_given_and_keeps_the_rest() {
        let mut s = settings(&[]);
        let start = s.current();
        assert_eq!(
            start,
            RuntimeConfig {
                steady_rps: 2.0,
                burst_rps: 20.0,
                overload_rps: 100.0,
                jitter: 0.2,
                request_timeout_ms: 5000,
                max_in_flight: 512,
                stats_interval_secs: 30.0
            }
        );
        let changed = s.change(br#"{"burst_rps": 50, "jitter": 0, "max_in_flight": 100}"#).unwrap();
        assert_eq!((changed.burst_rps, changed.jitter, changed.max_in_flight), (50.0, 0.0, 100));
        assert_eq!((changed.steady_rps, changed.request_timeout_ms), (2.0, 5000));
        let changed = s.change(br#"{"stats_interval_secs": 0, "max_in_flight": 512}"#).unwrap();
        assert_eq!((changed.stats_interval_secs, changed.burst_rps), (0.0, 50.0));
        let overrides = Value::Object(s.overrides());
        assert_eq!(overrides, serde_json::json!({"burst_rps": 50.0, "jitter": 0.0, "stats_interval_secs": 0.0}));
        assert_eq!(s.reset(), start);
        assert!(s.overrides().is_empty());
    }

    #[test]
    fn a_bad_value_is_refused_as_at_start_up_naming_the_field() {
        let mut s = settings(&["--max-rps", "1000", "--max-in-flight", "512"]);
        let cases: &[(&str, &str, &str)] = &[
            (r#"{"burst_rps": 2000}"#, "burst_rps", "exceeds MAX_RPS"),
            (r#"{"steady_rps": -1}"#, "steady_rps", "negative"),
            (r#"{"overload_rps": "many"}"#, "overload_rps", "number"),
            (r#"{"jitter": 1.5}"#, "jitter", "fraction from 0 to 1"),
            (r#"{"request_timeout_ms": 0}"#, "request_timeout_ms", "from 1 to 600000"),
            (r#"{"request_timeout_ms": 1.5}"#, "request_timeout_ms", "whole number"),
            (r#"{"request_timeout_ms": -5}"#, "request_timeout_ms", "whole number"),
            (r#"{"max_in_flight": 0}"#, "max_in_flight", "from 1"),
            (r#"{"max_in_flight": 513}"#, "max_in_flight", "start-up value MAX_IN_FLIGHT=512"),
            (r#"{"stats_interval_secs": 0.5}"#, "stats_interval_secs", "seconds from 1 to 86400"),
            (r#"{"max_rps": 5}"#, "body", "cannot be changed at runtime"),
            (r#"{"target_url": "http://elsewhere"}"#, "body", "cannot be changed at runtime"),
            (r#"[1]"#, "body", "JSON object"),
            // One bad field spoils the change: the good one is not applied either.
            (r#"{"steady_rps": 5, "jitter": 9}"#, "jitter", "fraction"),
        ];
        for (body, field, fragment) in cases {
            let (f, message) = refused(&mut s, body);
            assert_eq!(&f, field, "{body}: {message}");
            assert!(message.contains(fragment), "{body}: {message}");
        }
        // The very reason start-up gives.
        let start_up = Config::try_from(args(&["--jitter", "1.5"])).unwrap_err();
        let (_, message) = refused(&mut s, r#"{"jitter": 1.5}"#);
        assert!(message.starts_with(&start_up.reason), "{message} vs {}", start_up.reason);
        for body in ["", "{", "jitter=1"] {
            assert!(matches!(s.change(body.as_bytes()), Err(ConfigChangeError::BadJson(_))), "{body}");
        }
    }

    #[test]
    fn overrides_that_no_longer_fit_are_refused_whole() {
        let mut before = settings(&[]);
        before.change(br#"{"burst_rps": 500, "jitter": 0.5}"#).unwrap();
        let kept = before.overrides();
        // Restarted with a lower cap: the kept burst rate is over it.
        let mut after = settings(&["--max-rps", "100"]);
        let err = after.apply_overrides(&kept).unwrap_err();
        assert!(matches!(&err, ConfigChangeError::Invalid { field, .. } if field == "burst_rps"), "{err}");
        assert_eq!(after.current(), after.startup());
        // Under the same cap they apply.
        let mut same = settings(&[]);
        assert_eq!(same.apply_overrides(&kept).unwrap().burst_rps, 500.0);
    }

    #[test]
    fn a_change_reads_no_file() {
        let dir = std::env::temp_dir().join(format!("trafficgen-runtime-token-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let token = dir.join("token");
        fs::write(&token, "secret\n").unwrap();
        let path = token.to_str().unwrap().to_string();
        let mut s = settings(&["--control-token-file", &path]);
        // The token file went away (rotated): changes still work.
        fs::remove_file(&token).unwrap();
        assert_eq!(s.change(br#"{"steady_rps": 3}"#).unwrap().steady_rps, 3.0);
        fs::remove_dir_all(dir).unwrap();
    }
}
