//! `trafficgen workload from-openapi SPEC [--out FILE]`: writes the workload
//! derived from an OpenAPI document (a file, or `-` for stdin). A line per
//! part of the document that could not be used goes to stderr; the file
//! lists them too. Exit 0 with a workload, 2 when the document gives none.

use std::io::{Read, Write};
use std::process::ExitCode;

use crate::app::cli::FromOpenApiArgs;
use crate::base::url::TargetUrl;
use crate::openapi::{self, LoginChoice, MAX_DOCUMENT_BYTES};
use crate::workload::{self, Options, Target};

const BAD_INPUT: u8 = 2;
/// Most problem lines printed; the file lists the operations left out too.
const MAX_PRINTED: usize = 200;

pub fn run(args: &FromOpenApiArgs) -> ExitCode {
    let source = if args.spec == "-" { "stdin".to_string() } else { args.spec.clone() };
    let fail = |message: String| {
        eprintln!("error: {source}: {message}");
        ExitCode::from(BAD_INPUT)
    };
    for (flag, weight) in [("--read-weight", args.read_weight), ("--write-weight", args.write_weight)] {
        if !(1..=workload::model::MAX_WEIGHT).contains(&weight) {
            eprintln!("error: {flag} {weight}: must be a whole number from 1 to {}", workload::model::MAX_WEIGHT);
            return ExitCode::from(BAD_INPUT);
        }
    }
    let bytes = match read_spec(&args.spec) {
        Ok(bytes) => bytes,
        Err(e) => return fail(e),
    };
    let login = match args.login.as_deref() {
        None | Some("auto") => LoginChoice::Auto,
        Some("none") => LoginChoice::Off,
        Some(name) => LoginChoice::Named(name.to_string()),
    };
    let options = openapi::Options {
        read_weight: args.read_weight,
        write_weight: args.write_weight,
        include_delete: args.include_delete,
        include_deprecated: args.include_deprecated,
        login,
    };
    let derived = match openapi::derive(&source, &bytes, &options) {
        Ok(derived) => derived,
        Err(refusal) => return fail(refusal.0),
    };
    for problem in derived.problems.iter().take(MAX_PRINTED) {
        eprintln!("{source}{problem}");
    }
    let more = derived.problems.len().saturating_sub(MAX_PRINTED) + derived.more_problems;
    if more > 0 {
        eprintln!("{source}: … and {more} more problems");
    }
    // Checked as `workload check` would (with stand-ins for the credentials'
    // variables): what is written always loads.
    let target = TargetUrl::parse("http://nginx").map(|t| Target::new(&t));
    if let Ok(target) = target
        && let Err(e) = workload::load_str(
            "the derived workload",
            &derived.text,
            &Options { env: openapi::stand_in_env(&derived), ..Options::new(target, 50) },
        )
    {
        eprintln!("error: {source}: the derived workload does not load (a trafficgen bug; please report it):\n{e}");
        return ExitCode::FAILURE;
    }
    let written = match &args.out {
        None => std::io::stdout().lock().write_all(derived.text.as_bytes()).map(|()| "stdout".to_string()),
        Some(path) => std::fs::write(path, &derived.text).map(|()| path.display().to_string()),
    };
    match written {
        Ok(to) => {
            let check = args.out.as_ref().map_or_else(|| "FILE".to_string(), |p| p.display().to_string());
            let journeys = match derived.flows.len() {
                0 => String::new(),
                1 => " and 1 journey".to_string(),
                n => format!(" and {n} journeys"),
            };
            let env = if derived.credentials.is_empty() {
                String::new()
            } else {
                format!("{} ", derived.credentials.iter().map(|n| format!("{n}=…")).collect::<Vec<_>>().join(" "))
            };
            eprintln!(
                "{source}: OpenAPI {}: {} requests{journeys} written to {to}, {} operations left out; see it with `{env}trafficgen workload check {check}`",
                derived.version, derived.requests, derived.left_out
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot write the workload: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The document's bytes: at most one past the bound, so the bound is said.
fn read_spec(spec: &str) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    let limit = MAX_DOCUMENT_BYTES as u64 + 1;
    let read = if spec == "-" {
        std::io::stdin().lock().take(limit).read_to_end(&mut bytes)
    } else {
        crate::base::file::open_regular(std::path::Path::new(spec)).and_then(|f| f.take(limit).read_to_end(&mut bytes))
    };
    read.map_err(|e| format!("cannot read it: {e}"))?;
    Ok(bytes)
}
