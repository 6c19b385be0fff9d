use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use clap::error::ErrorKind;
use trafficgen::app::cli::{Cli, Command, SidecarArgs, WorkloadCommand};
use trafficgen::app::config::{Config, ConfigError};
use trafficgen::app::healthcheck;
use trafficgen::app::{ListenError, Sidecar, Signals};
use trafficgen::base::descriptors;
use trafficgen::demo_target;
use trafficgen::observe::logging;

/// Exit code for invalid settings, as clap uses.
const BAD_SETTINGS: u8 = 2;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{}", one_line(&e.render().to_string()));
            return ExitCode::from(BAD_SETTINGS);
        }
    };
    match cli.command {
        None => sidecar(cli.sidecar),
        Some(Command::DemoTarget(args)) => {
            let settings = match trafficgen::app::config::demo_target_settings(&args) {
                Ok(s) => s,
                Err(e) => return bad_settings(e),
            };
            logging::init(args.log_format, "demo-target");
            finish(actix_rt::System::new().block_on(demo_target::run(settings)))
        }
        Some(Command::Healthcheck(args)) => healthcheck::run(args),
        Some(Command::Workload(args)) => match args.command {
            WorkloadCommand::Check(check) => trafficgen::app::check_command::run(&check),
            WorkloadCommand::FromOpenapi(args) => trafficgen::app::openapi_command::run(&args),
        },
        Some(Command::Export(args)) => trafficgen::app::export_command::run(&args),
        Some(Command::Run(args)) => trafficgen::app::run::run(&args),
    }
}

fn sidecar(args: SidecarArgs) -> ExitCode {
    let mut config = match Config::try_from(args) {
        Ok(config) => config,
        Err(e) => return bad_settings(e),
    };
    config.warnings.extend(misspelled_settings());
    let budget = match share_descriptors(&config) {
        Ok(budget) => budget,
        Err(e) => return bad_settings(e),
    };
    logging::init(config.log_format, "traffic-generator");
    finish(actix_rt::System::new().block_on(async move {
        // First: from here on no signal takes its default action.
        let signals = Signals::listen().context("cannot listen for signals")?;
        let sidecar = Sidecar::build(config, Some(budget)).await?;
        sidecar.run_until_stopped(signals).await
    }))
}

/// Raises the open-file limit as far as allowed and checks that the engine,
/// the control server and the process all fit in it.
fn share_descriptors(config: &Config) -> Result<descriptors::DescriptorBudget, ConfigError> {
    let max_in_flight = config.engine.max_in_flight;
    let (limit, raised_from) = descriptors::raise_open_file_limit().map_err(|e| {
        ConfigError::new("MAX_IN_FLIGHT", max_in_flight, format_args!("cannot read RLIMIT_NOFILE: {e}"))
    })?;
    descriptors::share(limit, raised_from, max_in_flight, config.control_limits.max_connections, config.demo)
        .map_err(|e| ConfigError::new("MAX_IN_FLIGHT", max_in_flight, e))
}

/// clap's message on one line: the first line, with the allowed values and
/// the "a similar argument exists" tip its later lines give.
fn one_line(rendered: &str) -> String {
    let mut lines = rendered.lines();
    let mut line = lines.next().unwrap_or("error: invalid arguments").to_string();
    let extras: Vec<&str> = lines
        .map(str::trim)
        .filter_map(|l| {
            l.strip_prefix("[possible values: ").and_then(|v| v.strip_suffix(']')).or_else(|| l.strip_prefix("tip: "))
        })
        .collect();
    for (i, extra) in extras.iter().enumerate() {
        line.push_str(if i == 0 { " (" } else { "; " });
        if rendered.contains(&format!("[possible values: {extra}]")) {
            line.push_str("possible values: ");
        }
        line.push_str(extra);
    }
    if !extras.is_empty() {
        line.push(')');
    }
    line
}

/// Environment names close to a setting's, which clap ignores silently.
fn misspelled_settings() -> Vec<String> {
    use clap::CommandFactory;
    fn env_names(command: &clap::Command, out: &mut Vec<String>) {
        out.extend(command.get_arguments().filter_map(|a| a.get_env()).map(|e| e.to_string_lossy().into_owned()));
        for sub in command.get_subcommands() {
            env_names(sub, out);
        }
    }
    let mut known = vec!["RUST_LOG".to_string()];
    env_names(&Cli::command(), &mut known);
    let known: Vec<&str> = known.iter().map(String::as_str).collect();
    let present: Vec<String> = std::env::vars_os().filter_map(|(k, _)| k.into_string().ok()).collect();
    trafficgen::app::env_names::misspelled(present.iter().map(String::as_str), &known)
}

fn bad_settings(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(BAD_SETTINGS)
}

fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A port in use or an address not on this machine is a bad setting.
        Err(e) if is_listen_error(&e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(BAD_SETTINGS)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The sidecar's own `ListenError`, or (for the demo target) an address
/// error anywhere in the chain.
fn is_listen_error(e: &anyhow::Error) -> bool {
    use std::io::ErrorKind::{AddrInUse, AddrNotAvailable, PermissionDenied};
    e.downcast_ref::<ListenError>().is_some()
        || e.chain().any(|cause| {
            cause
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| matches!(io.kind(), AddrInUse | AddrNotAvailable | PermissionDenied))
        })
}
