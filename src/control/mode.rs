//! `POST /mode/{name}` and `GET /modes`.

use std::time::{Duration, SystemTime};

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::guard::{authorize, read_body, refuse_foreign_origin};
use super::{ApiError, ControlState};
use crate::base::json::rate_value;
use crate::engine::mode::{MIN_RPS, Mode, Shape};
use crate::engine::users::UserPause;
use crate::jobs::timed::{self, MAX_TIMED_SECS};

/// Control bodies are a few bytes; anything bigger is refused unread.
const MAX_BODY_BYTES: usize = 4 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CustomRate {
    rps: f64,
    /// Seconds of a straight line from the current rate to `rps`.
    #[serde(default)]
    ramp_secs: Option<f64>,
}

/// `POST /mode/users`'s body: numbers are read as JSON numbers and checked
/// here, so `2.5`, `-1` and `1e9` are each refused with their own reason.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersBody {
    users: f64,
    /// Seconds of a straight line from the users running now to `users`.
    #[serde(default)]
    ramp_secs: Option<f64>,
    /// The pause between a user's iterations (`1s`, `1s..3s`); without
    /// it, `USER_PAUSE`.
    #[serde(default)]
    pause: Option<String>,
}

pub async fn switch(
    request: HttpRequest,
    name: web::Path<String>,
    payload: web::Payload,
    state: web::Data<ControlState>,
) -> Result<HttpResponse, ApiError> {
    refuse_foreign_origin(&request, &state)?;
    authorize(&request, &state)?;
    let mode: Mode =
        name.parse().map_err(|e: crate::engine::mode::UnknownMode| ApiError::UnknownMode(e.to_string()))?;
    // `?duration_secs=N`: a timed mode, after which the mode before comes back.
    let duration = duration_from_query(request.query_string())?;
    let body = read_body(&request, payload, &state, MAX_BODY_BYTES).await?;
    let modes = state.engine.modes();
    let plan = match mode {
        Mode::Custom => {
            let rate = parse_custom_rate(&body, modes.max_rps)?;
            let plan = modes.custom_plan(rate.rps).map_err(|e| ApiError::Invalid(e.to_string()))?;
            match check_ramp(rate.ramp_secs)? {
                Some(secs) => {
                    let now = SystemTime::now();
                    let from_rps = state.engine.plan().rate_at(now);
                    plan.shaped(Shape::Ramp { from_rps, secs }, now)
                }
                None => plan,
            }
        }
        Mode::Users => {
            let body = parse_users(&body, modes.max_users)?;
            let pause = body
                .pause
                .as_deref()
                .map(UserPause::parse)
                .transpose()
                .map_err(|e| ApiError::Invalid(format!("pause: {e}; write it as 1s, 500ms or 1s..3s")))?;
            let plan = modes.users_plan(body.users, pause).map_err(|e| ApiError::Invalid(e.to_string()))?;
            match check_ramp(body.ramp_secs)? {
                Some(secs) => {
                    let now = SystemTime::now();
                    let from_users = state.engine.plan().users_at(now) as f64;
                    plan.shaped(Shape::Ramp { from_rps: from_users, secs }, now)
                }
                None => plan,
            }
        }
        fixed => {
            // Any byte is a body, white space too: " " is as wrong as "x"
            // (the README's rule), and a fuzzer found the two treated apart.
            if !body.is_empty() {
                return Err(ApiError::Invalid(format!(
                    "mode '{fixed}' takes no body (its rate is set at start-up); for another rate use POST /mode/custom {{\"rps\": N}}"
                )));
            }
            modes.plan(fixed).ok_or_else(|| ApiError::Invalid(format!("mode '{fixed}' needs a rate")))?
        }
    };
    let outcome = state.live.switch_mode(plan.clone(), duration);
    let mut answer = if plan.is_users() {
        let pause = plan.user_pause.unwrap_or(modes.user_pause);
        // `rps` 0: the closed model has no rate of its own.
        json!({"mode": plan.mode.as_str(), "rps": 0, "model": "closed", "users": plan.rps as u64, "pause": pause.to_string()})
    } else {
        json!({"mode": plan.mode.as_str(), "rps": rate_value(plan.rps)})
    };
    match plan.shape {
        Shape::Ramp { from_rps, secs } if plan.is_users() => {
            answer["ramp"] = json!({"from_users": from_rps as u64, "secs": secs});
        }
        Shape::Ramp { from_rps, secs } => answer["ramp"] = json!({"from_rps": from_rps, "secs": secs}),
        _ => {}
    }
    if let Some(secs) = outcome.returns_in_secs {
        answer["returns_in_secs"] = json!(secs);
    }
    if let Some(job) = outcome.stopped_job {
        // A switch wins over a running job: say which one it stopped.
        answer["stopped_job"] = json!({"job_id": job.job_id, "status": job.status});
    }
    Ok(HttpResponse::Ok().json(answer))
}

/// A ramp's length: from 0 to a day; 0 or none is no ramp.
fn check_ramp(ramp_secs: Option<f64>) -> Result<Option<f64>, ApiError> {
    match ramp_secs {
        None => Ok(None),
        Some(secs) if (0.0..=MAX_TIMED_SECS).contains(&secs) => Ok((secs > 0.0).then_some(secs)),
        Some(secs) => Err(ApiError::Invalid(format!(
            "ramp_secs must be from 0 to {MAX_TIMED_SECS} seconds (24 h), not {}",
            crate::base::number::Shown(secs)
        ))),
    }
}

fn duration_from_query(query: &str) -> Result<Option<Duration>, ApiError> {
    timed::duration_from_query(query).map_err(ApiError::from)
}

pub async fn list(state: web::Data<ControlState>) -> HttpResponse {
    let modes = state.engine.modes();
    let rate_of = |m: Mode| rate_value(modes.rate_of(m).unwrap_or(0.0));
    HttpResponse::Ok().json(json!({
        "current": state.engine.plan().mode.as_str(),
        "modes": {
            "steady": rate_of(Mode::Steady),
            "burst": rate_of(Mode::Burst),
            "overload": rate_of(Mode::Overload),
            "pause": rate_of(Mode::Pause),
        },
        // 0 pauses; a positive rate must be at least one a day.
        "custom": {"min_rps": 0, "min_positive_rps": MIN_RPS, "max_rps": rate_value(modes.max_rps)},
        // The closed model: 0 pauses.
        "users": {"min_users": 0, "max_users": modes.max_users, "pause": modes.user_pause.to_string()},
    }))
}

fn parse_users(body: &[u8], max_users: u64) -> Result<UsersBody, ApiError> {
    let expected = format!(
        "expected a JSON body like {{\"users\": 20}} (optionally with \"ramp_secs\": 30 and \"pause\": \"1s..3s\") with users a whole number from 0 to MAX_USERS ({max_users})"
    );
    if body.trim_ascii().is_empty() {
        return Err(ApiError::BadJson(format!("POST /mode/users needs a body; {expected}")));
    }
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadJson(format!("body is not valid JSON ({e}); {expected}")))?;
    if !value.is_object() {
        return Err(ApiError::Invalid(format!("body must be a JSON object; {expected}")));
    }
    UsersBody::deserialize(value).map_err(|e| ApiError::Invalid(format!("{e}; {expected}")))
}

fn parse_custom_rate(body: &[u8], max_rps: f64) -> Result<CustomRate, ApiError> {
    let expected = format!(
        "expected a JSON body like {{\"rps\": 250}} (optionally with \"ramp_secs\": 30) with rps a number from 0 to {}",
        rate_value(max_rps)
    );
    if body.trim_ascii().is_empty() {
        return Err(ApiError::BadJson(format!("POST /mode/custom needs a body; {expected}")));
    }
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadJson(format!("body is not valid JSON ({e}); {expected}")))?;
    // serde would also take `[250]` for the struct; only the object form is the API.
    if !value.is_object() {
        return Err(ApiError::Invalid(format!("body must be a JSON object; {expected}")));
    }
    CustomRate::deserialize(value).map_err(|e| ApiError::Invalid(format!("{e}; {expected}")))
}
