//! `trafficgen workload check FILE`: reads and checks a workload, prints it
//! normalised with one sample of each request as it would be sent. Sends
//! nothing. Exit 0, or 2 with one `file:line:column: what is wrong` line
//! per problem.

use std::process::ExitCode;

use crate::app::cli::WorkloadCheckArgs;
use crate::base::url::TargetUrl;
use crate::workload::{self, Options, Target, check};

/// Exit code for a workload that cannot be used, as for bad settings.
const BAD_INPUT: u8 = 2;
pub fn run(args: &WorkloadCheckArgs) -> ExitCode {
    let target = match TargetUrl::parse(&args.target_url) {
        Ok(t) => t,
        Err(reason) => {
            eprintln!("error: invalid TARGET_URL={:?}: {reason}", args.target_url);
            return ExitCode::from(BAD_INPUT);
        }
    };
    if !(1..=1_000_000).contains(&args.id_buffer_size) {
        eprintln!("error: invalid ID_BUFFER_SIZE={}: must be from 1 to 1000000", args.id_buffer_size);
        return ExitCode::from(BAD_INPUT);
    }
    let options = Options::new(Target::new(&target), args.id_buffer_size);
    match workload::load_file(&args.file, &options) {
        Ok(workload) => {
            print!("{}", check::report(&workload, target.as_str()));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(BAD_INPUT)
        }
    }
}
