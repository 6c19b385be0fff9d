//! `trafficgen run`: the one-shot CI mode. Sends a scenario at a target for a
//! set time through the same engine and job machinery as the sidecar, judges
//! the SLOs over their window, prints a summary table and exits 0 (every SLO
//! met), 1 (one missed or without data, or the run cut short) or 2 (bad input).

pub mod report;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use serde_json::json;

use crate::app::cli::{Cli, RunArgs};
use crate::app::config::{Config, MAX_RPS_LIMIT, window_duration};
use crate::app::{PlayOptions, Sidecar};
use crate::base::duration::parse_duration;
use crate::engine::mode::MIN_RPS;
use crate::jobs::scenario::ScenarioKind;
use crate::jobs::{JobLimits, JobSpec, Progress};
use report::RunReport;

/// Exit code for bad input, as for bad settings.
const BAD_INPUT: u8 = 2;

/// How progress is shown while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProgressStyle {
    Bar,
    Plain,
    None,
}

/// What the arguments say, checked.
struct RunPlan {
    config: Config,
    spec: JobSpec,
    scenario: ScenarioKind,
    progress: ProgressStyle,
}

pub fn run(args: &RunArgs) -> ExitCode {
    let plan = match plan(args) {
        Ok(plan) => plan,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(BAD_INPUT);
        }
    };
    let RunPlan { config, spec, scenario, progress } = plan;
    let target_url = config.engine.target.as_str().to_string();
    let slo_window_secs = config.slo_window.as_secs_f64();
    let (duration_secs, max_rps, users) = (spec.duration_secs, spec.max_rps, spec.users);
    let options = PlayOptions { serve_control: args.port.is_some(), abort_on_fail: args.abort_on_fail };
    let played = actix_rt::System::new().block_on(async move {
        let sidecar = Sidecar::build(config, None).await.map_err(|e| match e.downcast::<super::ListenError>() {
            Ok(listen) => anyhow::Error::new(super::ListenError { hint: "choose another --port", ..listen }),
            Err(other) => other,
        })?;
        let mut shown = false;
        let played = sidecar
            .play(spec, options, |p| {
                if let Some(p) = p {
                    show_progress(progress, &p);
                    shown = true;
                }
            })
            .await;
        if shown && progress == ProgressStyle::Bar {
            eprintln!();
        }
        played
    });
    let played = match played {
        Ok(played) => played,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(BAD_INPUT);
        }
    };
    let slo = played.slo.map(|s| s.objectives).unwrap_or_default();
    // A gate must not pass by accident: an objective with nothing to judge
    // it on at the end (no answer, say) fails the run like a missed one.
    // The sidecar's continuous watch, which a pause empties, does not.
    let slo_failed = slo.iter().any(|s| s.outcome != "met");
    let aborted = played.aborted_for.is_some();
    let report = RunReport {
        target_url,
        scenario: scenario.as_str(),
        duration_secs,
        max_rps,
        users,
        aborted,
        interrupted: played.interrupted,
        passed: !slo_failed && !aborted && !played.interrupted,
        summary: played.record.summary.unwrap_or_default(),
        errors_by_kind: played.errors_by_kind,
        slo,
        slo_window_secs,
    };
    print!("{}", report.table());
    if played.interrupted {
        println!("(interrupted: the numbers cover the run up to the signal)");
    }
    let _ = std::io::stdout().flush();
    if let Some(path) = &args.summary_json {
        let written =
            serde_json::to_vec_pretty(&report).map_err(|e| e.to_string()).and_then(|json| write_whole(path, &json));
        if let Err(e) = written {
            eprintln!("error: cannot write --summary-json {}: {e}", path.display());
            return ExitCode::from(BAD_INPUT);
        }
    }
    ExitCode::from(report.exit_code())
}

/// Checks the arguments and builds the sidecar's configuration (the engine
/// sends nothing outside the job: every mode rate 0) and the job.
fn plan(args: &RunArgs) -> Result<RunPlan, String> {
    let scenario: ScenarioKind =
        args.scenario.parse().map_err(|e: crate::jobs::scenario::UnknownScenario| e.to_string())?;
    let duration =
        parse_duration(&args.duration).map_err(|e| format!("invalid --duration {:?}: {e}", args.duration))?;
    let ramp_up = parse_duration(&args.ramp_up).map_err(|e| format!("invalid --ramp-up {:?}: {e}", args.ramp_up))?;
    if !(args.max_rps.is_finite() && args.max_rps > 0.0) {
        return Err(format!("invalid --max-rps {}: must be a rate above 0", args.max_rps));
    }
    let progress = match args.progress.as_str() {
        "auto" if std::io::stderr().is_terminal() => ProgressStyle::Bar,
        "auto" | "plain" => ProgressStyle::Plain,
        "bar" => ProgressStyle::Bar,
        "none" => ProgressStyle::None,
        other => return Err(format!("invalid --progress {other:?}: must be auto, bar, plain or none")),
    };
    // A summary that cannot be written is known before the run, not after;
    // the file itself is not touched until the run writes it.
    if let Some(path) = &args.summary_json {
        can_write_beside(path).map_err(|e| format!("cannot write --summary-json {}: {e}", path.display()))?;
    }
    // The window: SLO_WINDOW, or 1 m; the whole run when that is shorter.
    let window = match &args.slo_window {
        Some(raw) => raw.clone(),
        None => format!("{}", duration.clamp(10.0, 60.0).ceil() as u64),
    };
    window_duration("SLO_WINDOW", &window, 10, 86_400).map_err(|e| format!("invalid --slo-window: {e}"))?;

    let own_stages = own_stages(args)?;
    // The sidecar's MAX_RPS: the run's rate, or its highest stage (held to
    // what MAX_RPS may be, so the job's own check names a stage out of
    // range); a users run keeps MAX_RPS as set, or its default (its users'
    // requests are not a rate it asks for).
    let max_rps = match &own_stages {
        Some((stages, false)) => {
            Some(stages.iter().map(|(_, rate)| *rate).fold(0.0, f64::max).clamp(MIN_RPS, MAX_RPS_LIMIT))
        }
        Some((_, true)) => None,
        None if args.users.is_some() => None,
        None => Some(args.max_rps),
    };
    let mut argv: Vec<String> = [
        "trafficgen",
        "--target-url",
        args.target_url.as_str(),
        "--bind",
        "127.0.0.1",
        "--port",
        &args.port.unwrap_or(0).to_string(),
        "--warmup-secs",
        "0",
        "--initial-mode",
        "pause",
        "--steady-rps",
        "0",
        "--burst-rps",
        "0",
        "--overload-rps",
        "0",
        "--stats-interval-secs",
        "0",
        "--mix",
        args.mix.as_str(),
        "--request-timeout-ms",
        &args.request_timeout_ms.to_string(),
        "--max-in-flight",
        &args.max_in_flight.to_string(),
        "--slo-window",
        &window,
        "--peers",
        "",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    if let Some(max_rps) = max_rps {
        argv.extend(["--max-rps".to_string(), format!("{max_rps}")]);
    }
    if let Some(workload) = &args.workload {
        argv.extend(["--workload".to_string(), workload.clone()]);
    }
    if let Some(slo) = &args.slo {
        argv.extend(["--slo".to_string(), slo.clone()]);
    }
    let cli = Cli::try_parse_from(&argv).map_err(|e| {
        let rendered = e.render().to_string();
        rendered.lines().next().unwrap_or("invalid arguments").trim_start_matches("error: ").to_string()
    })?;
    let config = Config::try_from(cli.sidecar).map_err(|e| e.to_string())?;

    let endpoints: Option<Vec<&str>> = args.endpoints.as_deref().map(|e| e.split(',').map(str::trim).collect());
    let mut body = json!({
        "scenario": scenario.as_str(),
        "duration_secs": duration,
        "max_rps": args.max_rps,
        "ramp_up_secs": ramp_up,
    });
    if let Some(endpoints) = endpoints {
        body["endpoints"] = json!(endpoints);
    }
    if let Some(users) = args.users {
        body["users"] = json!(users);
        if let Some(fields) = body.as_object_mut() {
            fields.remove("max_rps");
        }
    }
    if let Some((stages, users)) = &own_stages {
        let key = if *users { "users" } else { "rps" };
        let list: Vec<serde_json::Value> =
            stages.iter().map(|(secs, target)| json!({"duration_secs": secs, key: target})).collect();
        if let Some(fields) = body.as_object_mut() {
            for derived in ["duration_secs", "max_rps", "ramp_up_secs", "users"] {
                fields.remove(derived);
            }
            fields.insert("stages".into(), json!(list));
        }
    }
    let limits = JobLimits::of(&config.engine.workload, config.engine.modes.max_rps, config.engine.modes.max_users);
    let body = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
    let spec = JobSpec::parse(&body, &limits).map_err(|e| as_flags(&e.to_string()))?;
    Ok(RunPlan { config, spec, scenario, progress })
}

/// `--stages` or `--user-stages`: (seconds, target) pairs, and whether the
/// targets are users.
type OwnStages = (Vec<(f64, f64)>, bool);

/// The run's own stages; `None` without `--stages` or `--user-stages`.
fn own_stages(args: &RunArgs) -> Result<Option<OwnStages>, String> {
    let (flag, list, users) = match (&args.stages, &args.user_stages) {
        (Some(list), _) => ("--stages", list, false),
        (None, Some(list)) => ("--user-stages", list, true),
        (None, None) => return Ok(None),
    };
    Ok(Some((parse_stages(flag, list)?, users)))
}

/// A list of stages as `--stages` and `--user-stages` write it,
/// `DURATION:TARGET,…`: (seconds, target) pairs, each target a number of
/// 0 or more, at most [`crate::jobs::spec::MAX_STAGES`] of them. Errors
/// name `flag`. (`trafficgen export --user-stages` reads it too.)
pub fn parse_stages(flag: &str, list: &str) -> Result<Vec<(f64, f64)>, String> {
    let mut stages = Vec::new();
    for item in list.split(',').map(str::trim) {
        let shown: String = item.chars().take(40).collect();
        let (secs, target) = item
            .split_once(':')
            .ok_or_else(|| format!("invalid {flag} item {shown:?}: write DURATION:TARGET, e.g. 30s:50"))?;
        let secs = parse_duration(secs).map_err(|e| format!("invalid {flag} item {shown:?}: {e}"))?;
        let target: f64 = target
            .trim()
            .parse()
            .ok()
            .filter(|t: &f64| t.is_finite() && *t >= 0.0)
            .ok_or_else(|| format!("invalid {flag} item {shown:?}: the target must be a number of 0 or more"))?;
        stages.push((secs, target));
        if stages.len() > crate::jobs::spec::MAX_STAGES {
            return Err(format!("invalid {flag}: at most {} stages", crate::jobs::spec::MAX_STAGES));
        }
    }
    Ok(stages)
}

/// A job error in the words of `run`'s flags: the job's fields are
/// `--duration`, `--max-rps`… here.
fn as_flags(message: &str) -> String {
    // A stage's problem names its place in the list (`stages[1].rps`), which
    // is the place in `--stages` as written.
    if message.starts_with("stages") {
        return message.to_string();
    }
    const FLAGS: [(&str, &str); 4] = [
        ("duration_secs", "--duration"),
        ("ramp_up_secs", "--ramp-up"),
        ("max_rps", "--max-rps"),
        ("endpoints", "--endpoints"),
    ];
    FLAGS.iter().fold(message.to_string(), |m, (field, flag)| m.replace(field, flag))
}

/// The temporary file `path` is written through, beside it.
fn temporary_beside(path: &Path) -> PathBuf {
    let name = path.file_name().map_or_else(|| "summary".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// Whether a file can be written beside `path` (and so renamed onto it).
fn can_write_beside(path: &Path) -> Result<(), String> {
    let probe = temporary_beside(path);
    std::fs::File::create(&probe).map_err(|e| e.to_string())?;
    std::fs::remove_file(&probe).map_err(|e| e.to_string())
}

/// Writes `bytes` to `path` whole: to a temporary file beside it, then
/// renamed over it, so a reader never sees half a summary.
fn write_whole(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let temporary = temporary_beside(path);
    let written = std::fs::write(&temporary, bytes).and_then(|()| std::fs::rename(&temporary, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written.map_err(|e| e.to_string())
}

/// One progress line (plain) or a redrawn bar (terminal), on stderr so
/// stdout keeps only the summary.
fn show_progress(style: ProgressStyle, p: &Progress) {
    let done = if p.duration_secs > 0.0 { (p.elapsed_secs / p.duration_secs).clamp(0.0, 1.0) } else { 1.0 };
    let numbers = format!(
        "{:>5.0}/{:.0} s  {:>8.1}/s of {:.1}/s  sent {}  failed {}  dropped {}  p95 {}",
        p.elapsed_secs,
        p.duration_secs,
        p.achieved_rps,
        p.target_rps,
        p.requests.sent,
        p.requests.failed,
        p.requests.dropped,
        p.latency_ms.from_sent.p95.map_or("-".to_string(), |v| format!("{v:.1}ms")),
    );
    match style {
        ProgressStyle::None => {}
        ProgressStyle::Plain => eprintln!("{numbers}"),
        ProgressStyle::Bar => {
            const WIDTH: usize = 24;
            let filled = (done * WIDTH as f64).round() as usize;
            let bar: String = "#".repeat(filled) + &"-".repeat(WIDTH - filled.min(WIDTH));
            eprint!("\r[{bar}] {numbers}   ");
        }
    }
}
