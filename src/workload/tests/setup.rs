//! Logging in: what setup fills, which answers call for a new login, the
//! refresh time an answer gives, a journey's login step; and the mistakes
//! of their syntax, each at its place.

use std::time::Duration;

use super::{load, options};
use crate::workload::{JourneyId, RefreshError, load_str};

const LOGIN: &str = "pools:\n  token: {size: 1}\n  ids: ~\nsetup:\n  every_secs: {json: /expires_in, fraction: 0.5}\n  requests:\n    - name: login\n      method: POST\n      path: /login\n      capture: {pool: token, json: /token}\nrequests:\n  - name: account\n    weight: 1\n    method: GET\n    path: /account\n    headers: {Authorization: 'Bearer {{ pool(token) }}'}\n  - name: create\n    weight: 1\n    method: POST\n    path: /things\n    capture: {pool: ids, json: /id}\n  - name: read\n    weight: 1\n    method: GET\n    path: '/things/{{ pool(ids) }}'\n";

/// `line:col: message` of every problem of `text`.
fn problems(text: &str) -> Vec<String> {
    match load_str("s.yaml", text, &options()) {
        Ok(_) => Vec::new(),
        Err(e) => e.problems.iter().map(|p| format!("{}: {}", p.pos, p.message)).collect(),
    }
}

fn assert_problem(text: &str, at: &str, fragment: &str) {
    let found = problems(text);
    assert!(
        found.iter().any(|p| p.starts_with(&format!("{at}: ")) && p.contains(fragment)),
        "expected `{at}: …{fragment}…` in {found:#?}\nfor:\n{text}"
    );
}

#[test]
fn a_401_on_a_request_that_sends_what_setup_captured_calls_for_a_new_login() {
    let w = load(LOGIN);
    let id = |name: &str| w.find(name).unwrap();
    assert_eq!(w.setup_pools(), [w.pool_id("token").unwrap()]);
    assert!(w.relogs_setup(id("account"), 401));
    assert!(!w.relogs_setup(id("account"), 403), "only the codes relogin_on names");
    assert!(!w.relogs_setup(id("read"), 401), "it sends no setup value");
    assert!(!w.relogs_setup(id("login"), 401), "a setup request's own 401 is its run failing");
    assert!(w.has_setup_readers());
    assert!(w.wants_body(id("login")));
}

#[test]
fn relogin_on_names_the_codes_or_none() {
    let with = |relogin: &str| LOGIN.replace("  every_secs:", &format!("  relogin_on: {relogin}\n  every_secs:"));
    let w = load(&with("[401, 403]"));
    assert!(w.relogs_setup(w.find("account").unwrap(), 403));
    let w = load(&with("[]"));
    assert!(!w.relogs_setup(w.find("account").unwrap(), 401));
    assert_problem(&with("[401, 200]"), "5:15", "relogin_on takes 4xx and 5xx codes");
    assert_problem(&with("[401, nope]"), "5:21", "relogin_on must list answer codes");
}

#[test]
fn the_refresh_time_is_the_fraction_of_the_life_the_answer_gives() {
    let w = load(LOGIN);
    let login = w.find("login").unwrap();
    let after = |body: &str| w.refresh_after(login, Some(body.as_bytes()));
    assert_eq!(after(r#"{"token":"t","expires_in":900}"#), Some(Ok(Duration::from_secs(450))));
    assert_eq!(after(r#"{"expires_in":"10"}"#), Some(Ok(Duration::from_secs(5))), "a number in a text");
    assert_eq!(after(r#"{"expires_in":1}"#), Some(Ok(Duration::from_secs(1))), "never below 1 s");
    assert_eq!(after(r#"{"expires_in":1e300}"#), Some(Ok(Duration::from_secs(86_400))), "never above a day");
    assert_eq!(after(r#"{"token":"t"}"#), Some(Err(RefreshError::Missing)));
    assert_eq!(after(r#"{"expires_in":0}"#), Some(Err(RefreshError::NotSeconds)));
    assert_eq!(after(r#"{"expires_in":-5}"#), Some(Err(RefreshError::NotSeconds)));
    assert_eq!(after(r#"{"expires_in":"soon"}"#), Some(Err(RefreshError::NotSeconds)));
    assert_eq!(after(r#"{"expires_in":null}"#), Some(Err(RefreshError::NotSeconds)));
    assert_eq!(after("<html>"), Some(Err(RefreshError::NotJson)));
    assert_eq!(w.refresh_after(login, None), Some(Err(RefreshError::NoBody)));
    assert_eq!(w.refresh_after(w.find("account").unwrap(), Some(b"{}")), None, "not the login");
    assert_eq!(w.refresh_rule(), Some(("/expires_in".to_string(), 0.5)));
    // Without `fraction`, 0.8.
    let w = load(&LOGIN.replace(", fraction: 0.5", ""));
    let body = br#"{"expires_in":10}"#;
    assert_eq!(w.refresh_after(w.find("login").unwrap(), Some(body)), Some(Ok(Duration::from_secs(8))));
}

#[test]
fn every_secs_taken_from_an_answer_is_checked_where_it_is_written() {
    let with = |every: &str| LOGIN.replace("{json: /expires_in, fraction: 0.5}", every);
    assert_problem(&with("{json: expires_in}"), "5:22", "not a JSON pointer");
    assert_problem(&with("{json: /expires_in, fraction: 2}"), "5:45", "fraction must be a number from 0.05 to 1");
    assert_problem(&with("{json: /expires_in, fraction: 0}"), "5:45", "fraction must be a number");
    assert_problem(&with("{json: /expires_in, request: logon}"), "5:44", "unknown setup request `logon`");
    assert_problem(&with("{fraction: 0.5}"), "5:15", "needs `json`");
    assert_problem(&with("{json: /expires_in, every: 3}"), "5:35", "unknown key `every`");
    assert_problem(&with("soon"), "5:15", "or {json: /expires_in, fraction: 0.8}");
    assert_problem(&with("0"), "5:15", "every_secs must be a whole number from 1 to 86400");
    let named = load(&with("{json: /expires_in, request: login}"));
    assert!(named.refreshes(named.find("login").unwrap()));
    let fixed = load(&with("600"));
    assert_eq!(fixed.setup_every(), Some(Duration::from_secs(600)));
    assert!(!fixed.refresh_from_answer());
}

const JOURNEY: &str = "journeys:\n  - name: member\n    weight: 1\n    steps:\n      - name: login\n        method: POST\n        path: /login\n        capture: {var: token, json: /token}\n      - pause: 1s\n      - name: create\n        method: POST\n        path: /users\n        headers: {Authorization: 'Bearer {{ var(token) }}'}\n        capture: {var: id, json: /id}\n      - name: read\n        method: GET\n        path: '/users/{{ var(id) }}'\n        headers: {Authorization: 'Bearer {{ var(token) }}'}\n      - name: public\n        method: GET\n        path: '/users/{{ var(id) }}'\n";

#[test]
fn a_journey_step_that_sends_a_variable_in_a_header_logs_in_again_with_the_step_that_captured_it() {
    let w = load(JOURNEY);
    let member = JourneyId(0);
    assert_eq!(w.relogin_step(member, 2, 401), Some(0), "create: login is step 0");
    assert_eq!(w.relogin_step(member, 3, 401), Some(0), "read sends the id in its path: not a login");
    assert_eq!(w.relogin_step(member, 3, 403), None, "only relogin_on's codes");
    assert_eq!(w.relogin_step(member, 4, 401), None, "public sends no header value");
    assert_eq!(w.relogin_step(member, 0, 401), None, "the login itself");
    assert_eq!(w.relogin_step(member, 1, 401), None, "a pause");
    let off = load(&JOURNEY.replace("    weight: 1\n", "    weight: 1\n    relogin_on: []\n"));
    assert_eq!(off.relogin_step(member, 2, 401), None);
    let more = load(&JOURNEY.replace("    weight: 1\n", "    weight: 1\n    relogin_on: [401, 419]\n"));
    assert_eq!(more.relogin_step(member, 2, 419), Some(0));
    assert_problem(&JOURNEY.replace("    weight: 1\n", "    weight: 1\n    relogin_on: 2xx\n"), "4:17", "4xx and 5xx");
}
