//! What `trafficgen workload check FILE` prints of a checked workload: it
//! normalised (weights as shares, pools, fallbacks, setup) and one sample
//! of each request as it would be sent.

use std::fmt::Write as _;

use rand::SeedableRng;
use rand::rngs::SmallRng;

use super::model::{Body, RequestDef};
use super::{Draw, RequestId, Role, RunState, Step, Workload};

/// Longest sample body shown.
const SAMPLE_BODY_CHARS: usize = 2000;

/// The normalised workload and its samples, as printed.
pub fn report(workload: &Workload, target_url: &str) -> String {
    let mut out = String::new();
    let count = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let traffic =
        workload.requests().filter(|id| matches!(workload.role(*id), Role::Weighted(_) | Role::Error)).count();
    let journeys = workload.journeys().count();
    let _ = writeln!(
        out,
        "{}: valid: {}, {}, {}{}",
        workload.source(),
        count(traffic, "request"),
        count(workload.setup().len(), "setup request"),
        count(workload.pools().count(), "pool"),
        if journeys == 0 { String::new() } else { format!(", {}", count(journeys, "journey")) }
    );

    let defs: Vec<&RequestDef> = workload.model().all_requests().collect();
    let width = defs.iter().map(|d| d.name.len()).max().unwrap_or(4).max(4);
    let row = |out: &mut String, id: RequestId, share: &str| {
        let def = defs[id.index()];
        let _ = writeln!(out, "  {:width$}  {share:>6}  {:7} {}", def.name, def.method.as_str(), shown_target(def));
        for note in notes(workload, id) {
            let _ = writeln!(out, "  {:width$}  {:>6}  {note}", "", "");
        }
    };
    if traffic > 0 {
        let _ = writeln!(out, "\nRequests (share of the traffic, drawn by weight):");
    }
    for id in workload.requests() {
        match workload.role(id) {
            Role::Weighted(_) => row(&mut out, id, &format!("{:.1}%", workload.share(id).unwrap_or(0.0))),
            Role::Error => row(&mut out, id, "error"),
            Role::Setup | Role::Step => {}
        }
    }
    if workload.error_requests().next().is_some() {
        let _ = writeln!(out, "  (an `error` request is never drawn by weight; scenarios that inject errors send it)");
    }
    if !workload.setup().is_empty() {
        let when = match (workload.setup_every(), workload.refresh_rule()) {
            (_, Some((pointer, fraction))) => {
                format!("before the traffic, then at {fraction} of the seconds its answer gives at {pointer}")
            }
            (Some(every), None) => format!("before the traffic, then every {} s", every.as_secs()),
            (None, None) => "once, before the traffic".to_string(),
        };
        let _ = writeln!(out, "\nSetup ({when}, in this order):");
        for id in workload.setup() {
            row(&mut out, *id, "setup");
        }
        let _ = writeln!(out, "  a run that fails is tried again after 1 s, then up to 30 s apart");
        let readers: Vec<&str> =
            workload.requests().filter(|id| workload.reads_setup_values(*id)).map(|id| workload.name(id)).collect();
        let codes = workload.setup_relogin_on();
        if !readers.is_empty() && !codes.is_empty() {
            let _ = writeln!(out, "  answered {codes}, {} make the setup run again at once", readers.join(", "));
        }
    }
    for j in workload.journeys() {
        let vars = workload.journey_vars(j);
        let _ = writeln!(
            out,
            "\nJourney {} ({:.1}% of the arrivals; each instance has its own {}):",
            workload.journey_name(j),
            workload.journey_share(j),
            if vars.is_empty() { "nothing".to_string() } else { format!("variables {}", vars.join(", ")) }
        );
        for step in workload.steps(j) {
            match step {
                Step::Request { id, go_on } => {
                    row(&mut out, *id, if *go_on { "go on" } else { "step" });
                }
                Step::Pause(pause) => {
                    let _ = writeln!(out, "  {:width$}  {:>6}  pause {pause}", "", "");
                }
            }
        }
    }
    if !workload.model().data.is_empty() {
        let _ = writeln!(out, "\nData (values never shown; one row per journey instance):");
        for t in &workload.model().data {
            let _ = writeln!(
                out,
                "  {}: {} rows from {}, {}",
                t.name,
                workload.table_rows(&t.name),
                t.file,
                t.order.as_str()
            );
        }
    }
    if workload.pools().next().is_some() {
        let _ = writeln!(out, "\nPools:");
        for pool in workload.pools() {
            let name = workload.pool_name(pool);
            let fillers: Vec<&str> =
                defs.iter().filter(|d| d.captures.iter().any(|c| c.pool == name)).map(|d| d.name.as_str()).collect();
            let readers: Vec<&str> =
                defs.iter().filter(|d| d.pools_read().any(|p| p == name)).map(|d| d.name.as_str()).collect();
            let seeded = workload.model().pools.iter().find(|p| p.name == name).map_or(0, |p| p.values.len());
            let from_file = if seeded == 0 { String::new() } else { format!("; starts with {seeded} from the file") };
            let _ = writeln!(
                out,
                "  {name}: holds the newest {}{from_file}; filled by {}; read by {}",
                workload.pool_size(pool),
                list_or(&fillers, "nothing"),
                list_or(&readers, "nothing")
            );
        }
    }
    if !workload.warnings().is_empty() {
        let _ = writeln!(out, "\nWarnings:");
        for w in workload.warnings() {
            let _ = writeln!(out, "  {}:{}: {}", workload.source(), w.pos, w.message);
        }
    }
    let _ = writeln!(
        out,
        "\nSamples, as they would be sent to {target_url} (pool, variable, data and env values shown as {{{{ pool(name) }}}}…; nothing is sent):"
    );
    let mut state = RunState::new(workload);
    state.show_placeholders();
    let mut rng = SmallRng::seed_from_u64(1);
    let mut bytes = Vec::new();
    for id in workload.requests() {
        // Pools are shown, never read, so nothing falls back here.
        let Draw::Send(chosen) = workload.resolve(id, &mut rng, &filled(workload, &state)) else { continue };
        workload.render(&chosen, &mut rng, &mut state, &mut bytes);
        let _ = writeln!(out, "\n# {}", workload.name(id));
        let text = String::from_utf8_lossy(&bytes);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        for line in head.split("\r\n") {
            let _ = writeln!(out, "{line}");
        }
        if !body.is_empty() {
            let shown: String = body.chars().take(SAMPLE_BODY_CHARS).collect();
            let more = body.chars().count() > SAMPLE_BODY_CHARS;
            let _ =
                writeln!(out, "\n{shown}{}", if more { format!(" … ({} bytes)", body.len()) } else { String::new() });
        }
    }
    out
}

/// A copy of `state` with one stand-in value in every pool, so every
/// request resolves to itself for its sample.
fn filled(workload: &Workload, state: &RunState) -> RunState {
    let mut copy = state.clone();
    for pool in workload.pools() {
        copy.push(pool, b"_", false);
    }
    copy
}

fn shown_target(def: &RequestDef) -> String {
    let mut target = def.path.to_string();
    for (i, (name, value)) in def.query.iter().enumerate() {
        let _ = write!(target, "{}{name}={value}", if i == 0 { '?' } else { '&' });
    }
    target
}

fn notes(workload: &Workload, id: RequestId) -> Vec<String> {
    let def = &workload.model().all_requests().nth(id.index());
    let Some(def) = def else { return Vec::new() };
    let mut notes = Vec::new();
    if let Some(body) = &def.body {
        let kind = match body {
            Body::Json(_) => "JSON body",
            Body::Raw(_) => "text body",
        };
        notes.push(format!("{kind} ({})", def.effective_content_type().unwrap_or_default()));
    }
    let reads: Vec<&str> = def.pools_read().collect();
    if !reads.is_empty() {
        let instead = match workload.fallback(id) {
            Some(f) => format!("{} is sent instead", workload.name(f)),
            None => "it is not sent".to_string(),
        };
        let which = if reads.len() == 1 { "it is" } else { "one of them is" };
        notes.push(format!("reads {}; while {which} empty, {instead}", reads.join(", ")));
    }
    for c in &def.captures {
        let rules = match (c.url_safe, c.max_len) {
            (true, n) => format!(", URL-safe, at most {n} bytes"),
            (false, 256) => String::new(),
            (false, n) => format!(", at most {n} bytes"),
        };
        let how = match (&c.regex, c.path) {
            (Some(r), _) => format!(" (regex {r:?})"),
            (None, true) => " (a path to follow)".to_string(),
            (None, false) => String::new(),
        };
        let into = c.var.as_ref().map_or_else(|| c.pool.clone(), |var| format!("variable {var}"));
        notes.push(format!("captures {}{how} into {into}{rules}", c.source));
    }
    if def.success != super::model::StatusSet::success() {
        notes.push(format!("success: {}", def.success));
    }
    notes
}

fn list_or(items: &[&str], none: &str) -> String {
    if items.is_empty() { none.to_string() } else { items.join(", ") }
}
