use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
use trafficgen::app::{Sidecar, shutdown_signal};
use trafficgen::cli::{Cli, Command, SidecarArgs, WorkloadCommand};
use trafficgen::config::Config;
use trafficgen::demo_target::{self, DemoTargetSettings};
use trafficgen::{healthcheck, logging};

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
            // clap's message spans several lines; the first says it all.
            let rendered = e.render().to_string();
            eprintln!("{}", rendered.lines().next().unwrap_or("error: invalid arguments"));
            return ExitCode::from(BAD_SETTINGS);
        }
    };
    match cli.command {
        None => sidecar(cli.sidecar),
        Some(Command::DemoTarget(args)) => {
            let settings = match DemoTargetSettings::try_from(&args) {
                Ok(s) => s,
                Err(e) => return bad_settings(e),
            };
            logging::init(args.log_format, "demo-target");
            finish(actix_rt::System::new().block_on(demo_target::run(settings)))
        }
        Some(Command::Healthcheck(args)) => healthcheck::run(args),
        Some(Command::Workload(args)) => match args.command {
            WorkloadCommand::Check(check) => trafficgen::workload::check::run(&check),
        },
        Some(Command::Export(args)) => trafficgen::export::command::run(&args),
    }
}

fn sidecar(args: SidecarArgs) -> ExitCode {
    let config = match Config::try_from(args) {
        Ok(config) => config,
        Err(e) => return bad_settings(e),
    };
    logging::init(config.log_format, "traffic-generator");
    finish(actix_rt::System::new().block_on(async move {
        let sidecar = Sidecar::build(config).await?;
        sidecar.run_until_stopped(shutdown_signal()).await
    }))
}

fn bad_settings(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(BAD_SETTINGS)
}

fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
