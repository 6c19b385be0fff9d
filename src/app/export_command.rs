//! `trafficgen export --format k6|locust|artillery …`: writes the script to
//! stdout or `-o FILE`. Exit 0, or 2 with one line on bad input.

use std::process::ExitCode;

use crate::app::cli::ExportArgs;
use crate::app::config::MAX_USERS_LIMIT;
use crate::base::duration::parse_duration;
use crate::base::url::TargetUrl;
use crate::engine::users::UserPause;
use crate::export::{ClosedModel, Format, RenderError, Spec, Traffic, UnknownFormat, render};
use crate::jobs::scenario::ScenarioKind;
use crate::observe::slo;
use crate::workload::mix::{Endpoint, Mix};
use crate::workload::template::ENV_PREFIX;
use crate::workload::{self, EnvSource, Options, OrderWeights, Secret, Target, Workload};

/// Exit code for bad input, as for bad settings.
const BAD_INPUT: u8 = 2;

pub fn run(args: &ExportArgs) -> ExitCode {
    match build(args) {
        Ok(text) => match &args.output {
            None => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Some(path) => match std::fs::write(path, text) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(format!("cannot write {}: {e}", path.display())),
            },
        },
        Err(message) => fail(message),
    }
}

fn fail(message: String) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(BAD_INPUT)
}

/// The script, or the one line that says what is wrong.
pub fn build(args: &ExportArgs) -> Result<String, String> {
    let format: Format = args
        .format
        .as_deref()
        .ok_or("--format is missing: k6, locust or artillery")?
        .parse()
        .map_err(|e: UnknownFormat| e.to_string())?;
    let target = TargetUrl::parse(&args.target_url)
        .map_err(|reason| format!("invalid --target-url (TARGET_URL) {:?}: {reason}", args.target_url))?;
    if !(1..=1_000_000).contains(&args.id_buffer_size) {
        return Err(format!(
            "invalid --id-buffer-size (ID_BUFFER_SIZE) {}: must be from 1 to 1000000",
            args.id_buffer_size
        ));
    }
    if !(1..=100_000).contains(&args.max_in_flight) {
        return Err(format!(
            "invalid --max-in-flight (MAX_IN_FLIGHT) {}: must be from 1 to 100000",
            args.max_in_flight
        ));
    }
    let scenario = match &args.scenario {
        None => None,
        Some(name) => Some(name.parse::<ScenarioKind>().map_err(|e| e.to_string())?),
    };
    let (traffic, users) = match closed_model(args, scenario)? {
        Some(closed) => closed,
        None => {
            let rps = open_rate(args, scenario)?;
            let (duration, ramp_up) = duration_and_ramp(args)?;
            let traffic =
                Traffic::new(scenario, rps, duration, ramp_up).map_err(|e| format!("invalid traffic: {e}"))?;
            (traffic, None)
        }
    };
    let slos = slo::parse(args.slo.as_deref().unwrap_or_default()).map_err(|e| format!("invalid --slo (SLO): {e}"))?;

    let options = Options::new(Target::new(&target), args.id_buffer_size);
    let (workload, source) = match &args.workload {
        Some(path) => {
            let loaded = workload::read_file(path).and_then(|bytes| {
                let options = workload::file_options(path, &options).with_env(env_placeholders(&bytes));
                workload::load_bytes(&path.display().to_string(), &bytes, &options)
            });
            let workload = loaded.map_err(|e| {
                let mut lines = e.to_string().lines().map(str::to_string).collect::<Vec<_>>();
                let more = lines.len().saturating_sub(1);
                let first = if lines.is_empty() { String::from("cannot be read") } else { lines.swap_remove(0) };
                if more > 0 {
                    format!("{first} (and {more} more; `trafficgen workload check` lists them all)")
                } else {
                    first
                }
            })?;
            (workload, path.display().to_string())
        }
        None => {
            let mix: Mix = args.mix.parse().map_err(|e| format!("invalid --mix (MIX) {:?}: {e}", args.mix))?;
            builtin(mix, args.id_buffer_size, &options)?
        }
    };
    let endpoints = args.endpoints.as_deref().map(|list| {
        list.split(',').map(str::trim).filter(|name| !name.is_empty()).map(str::to_string).collect::<Vec<_>>()
    });
    let spec = Spec {
        source,
        target_url: target.as_str().to_string(),
        traffic,
        slos,
        max_in_flight: args.max_in_flight,
        // The export command has no flag of its own for it: the sidecar's default.
        max_journeys: crate::export::DEFAULT_MAX_JOURNEYS,
        endpoints,
        max_bytes: crate::export::MAX_SCRIPT_BYTES,
        users,
    };
    render(format, &workload, &spec).map_err(|e| match e {
        RenderError::Slo(e) => format!("invalid --slo (SLO): {e}"),
        RenderError::Endpoints(e) => format!("invalid --{e}"),
        e @ RenderError::TooLarge { .. } => e.to_string(),
        RenderError::NotExported(e) => e,
    })
}

/// The open model's rate: `--rps`, or a `--scenario`'s `--max-rps`.
fn open_rate(args: &ExportArgs, scenario: Option<ScenarioKind>) -> Result<f64, String> {
    match (scenario, args.max_rps, args.rps) {
        (Some(_), Some(max), None) => Ok(max),
        (Some(_), None, _) => Err("--scenario needs --max-rps: the rate the scenario rises to".into()),
        (Some(_), Some(_), Some(_)) => {
            Err("--rps is the constant rate without a scenario; with --scenario give --max-rps".into())
        }
        (None, Some(_), _) => Err("--max-rps is the peak of a --scenario; for a constant rate give --rps".into()),
        (None, None, rps) => Ok(rps.unwrap_or(2.0)),
    }
}

/// `--duration` (60 s unless given) and `--ramp-up` (none unless given).
fn duration_and_ramp(args: &ExportArgs) -> Result<(f64, f64), String> {
    let duration = args.duration.as_deref().unwrap_or("60s");
    let duration = parse_duration(duration).map_err(|e| format!("invalid --duration {duration:?}: {e}"))?;
    let ramp_up = args.ramp_up.as_deref().unwrap_or("0s");
    let ramp_up = parse_duration(ramp_up).map_err(|e| format!("invalid --ramp-up {ramp_up:?}: {e}"))?;
    Ok((duration, ramp_up))
}

/// Users mode (`--users`, `--user-stages`, `--pause`): the stages in
/// virtual users and their pause, by `trafficgen run`'s rules (users are
/// not a rate: no `--rps` or `--max-rps` with them); `None` for a rate.
fn closed_model(
    args: &ExportArgs,
    scenario: Option<ScenarioKind>,
) -> Result<Option<(Traffic, Option<ClosedModel>)>, String> {
    if args.users.is_none() && args.user_stages.is_none() {
        if args.pause.is_some() {
            return Err("--pause is the users' pause: give it with --users or --user-stages".into());
        }
        return Ok(None);
    }
    let flag = if args.users.is_some() { "--users" } else { "--user-stages" };
    if args.users.is_some() && args.user_stages.is_some() {
        return Err("give --users or --user-stages, not both".into());
    }
    if args.rps.is_some() || args.max_rps.is_some() {
        return Err(format!(
            "{flag} counts virtual users (the closed model), not requests/s: leave out --rps and --max-rps (a rate is --rps N, or --scenario S --max-rps N, without {flag})"
        ));
    }
    let pause = match &args.pause {
        None => UserPause::fixed(1.0),
        Some(text) => UserPause::parse(text).map_err(|e| format!("invalid --pause {text:?}: {e}"))?,
    };
    let whole = |text: &str| text.trim().parse::<u64>().ok().filter(|n| *n <= MAX_USERS_LIMIT);
    let traffic = match (&args.users, &args.user_stages) {
        (Some(text), _) => {
            let users = whole(text).filter(|n| *n >= 1).ok_or_else(|| {
                let shown: String = text.chars().take(40).collect();
                format!("invalid --users {shown:?}: must be a whole number from 1 to {MAX_USERS_LIMIT}")
            })?;
            let (duration, ramp_up) = duration_and_ramp(args)?;
            Traffic::new(scenario, users as f64, duration, ramp_up).map_err(|e| format!("invalid traffic: {e}"))?
        }
        (None, Some(list)) => {
            if args.duration.is_some() || args.ramp_up.is_some() {
                return Err("--user-stages gives the duration and the ramps: leave out --duration and --ramp-up".into());
            }
            let stages = crate::app::run::parse_stages("--user-stages", list)?;
            if let Some(at) =
                stages.iter().position(|(_, users)| users.fract() != 0.0 || *users > MAX_USERS_LIMIT as f64)
            {
                return Err(format!(
                    "invalid --user-stages item {}: users must be a whole number from 0 to {MAX_USERS_LIMIT}",
                    at + 1
                ));
            }
            Traffic::of_stages(scenario, &stages).map_err(|e| format!("invalid --user-stages: {e}"))?
        }
        (None, None) => return Ok(None),
    };
    Ok(Some((traffic, Some(ClosedModel { min_pause_secs: pause.min_secs, max_pause_secs: pause.max_secs }))))
}

/// The built-in orders workload for these `MIX` weights and pool size, and
/// how the script names it.
pub fn builtin(mix: Mix, id_buffer_size: usize, options: &Options) -> Result<(Workload, String), String> {
    let weights = OrderWeights {
        create_order: mix.weight(Endpoint::CreateOrder),
        list_orders: mix.weight(Endpoint::ListOrders),
        get_order: mix.weight(Endpoint::GetOrder),
    };
    let workload = workload::orders(weights, options).map_err(|e| e.to_string())?;
    let shown: Vec<String> = Endpoint::ALL.iter().map(|e| format!("{e}={}", mix.weight(*e))).collect();
    Ok((workload, format!("the built-in orders workload (MIX={}, ID_BUFFER_SIZE={id_buffer_size})", shown.join(","))))
}

/// What `env(…)` reads while a workload is exported: a placeholder for
/// every name the file could read. A script reads the tool's own
/// environment when it runs, so the exporting process needs none of the
/// values, and none of them can end up in a script.
fn env_placeholders(bytes: &[u8]) -> EnvSource {
    let text = String::from_utf8_lossy(bytes);
    let names: std::collections::BTreeSet<String> = text
        .match_indices(ENV_PREFIX)
        .map(|(at, _)| text[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').take(256).collect())
        .collect();
    EnvSource::Fixed(std::sync::Arc::new(names.into_iter().map(|n| (n, Secret("x".to_string()))).collect()))
}
