//! `trafficgen export --format k6|locust|artillery …`: writes the script to
//! stdout or `-o FILE`. Exit 0, or 2 with one line on bad input.

use std::process::ExitCode;

use crate::app::cli::ExportArgs;
use crate::base::duration::parse_duration;
use crate::base::url::TargetUrl;
use crate::export::{Format, RenderError, Spec, Traffic, UnknownFormat, render};
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
    let rps = match (scenario, args.max_rps, args.rps) {
        (Some(_), Some(max), None) => max,
        (Some(_), None, _) => return Err("--scenario needs --max-rps: the rate the scenario rises to".into()),
        (Some(_), Some(_), Some(_)) => {
            return Err("--rps is the constant rate without a scenario; with --scenario give --max-rps".into());
        }
        (None, Some(_), _) => {
            return Err("--max-rps is the peak of a --scenario; for a constant rate give --rps".into());
        }
        (None, None, rps) => rps.unwrap_or(2.0),
    };
    let duration =
        parse_duration(&args.duration).map_err(|e| format!("invalid --duration {:?}: {e}", args.duration))?;
    let ramp_up = parse_duration(&args.ramp_up).map_err(|e| format!("invalid --ramp-up {:?}: {e}", args.ramp_up))?;
    let traffic = Traffic::new(scenario, rps, duration, ramp_up).map_err(|e| format!("invalid traffic: {e}"))?;
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
        users: None,
    };
    render(format, &workload, &spec).map_err(|e| match e {
        RenderError::Slo(e) => format!("invalid --slo (SLO): {e}"),
        RenderError::Endpoints(e) => format!("invalid --{e}"),
        e @ RenderError::TooLarge { .. } => e.to_string(),
        RenderError::NotExported(e) => e,
    })
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
