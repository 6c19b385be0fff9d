//! Journeys in the k6 script: each a function that sends its steps in
//! order within one iteration, `sleep` for its pauses, the instance's
//! variables as a local object, one row of each data table it reads (the
//! files read once with `open()` into a `SharedArray`), and counters of
//! journeys completed and ended early, by reason.

use std::fmt::Write as _;

use super::super::journeys::{Pause, Step};
use super::super::script::Script;
use super::super::text::{js_str, num};
use super::{c, function_name};
use crate::workload::model::DataOrder;

/// The data tables, pauses and journey counters (module level).
pub fn helpers(out: &mut String, script: &Script) {
    if !script.tables.is_empty() {
        tables(out, script);
    }
    if script.journeys.is_empty() {
        return;
    }
    let pauses: Vec<Pause> = script
        .journeys
        .iter()
        .flat_map(|j| &j.steps)
        .filter_map(|s| match s {
            Step::Pause(p) => Some(*p),
            Step::Send { .. } => None,
        })
        .collect();
    if pauses.iter().any(|p| matches!(p, Pause::Uniform(..))) {
        out.push_str(
            "// A pause of any length from min to max seconds, each as likely.
function pauseUniform(min, max) {
  return min + Math.random() * (max - min);
}

",
        );
    }
    if pauses.iter().any(|p| matches!(p, Pause::Exponential(_))) {
        let _ = writeln!(
            out,
            "// A pause exponentially distributed around a mean (the gaps of Poisson arrivals), at most {} s.",
            num(super::super::journeys::MAX_PAUSE_SECS)
        );
        let _ = writeln!(
            out,
            "function pauseExponential(mean) {{\n  return Math.min(-mean * Math.log(1 - Math.random()), {});\n}}\n",
            num(super::super::journeys::MAX_PAUSE_SECS)
        );
    }
    c(
        out,
        "Journeys: what trafficgen counts per journey, as k6 counters (tagged by journey, and by reason for those that end early: not_success, no_answer, unmet; or no_data for one that could not start). A step returns how it went.",
    );
    out.push_str(
        "const journeysCompleted = new Counter(\"journeys_completed\");
const journeysEnded = new Counter(\"journeys_ended\");
const journeysNotStarted = new Counter(\"journeys_not_started\");
const OK = \"ok\";
const NOT_SUCCESS = \"not_success\";
const NO_ANSWER = \"no_answer\";
const UNMET = \"unmet\";

// Whether the instance ends after a step that came to `result` (go on: a failure does not end it).
function ends(journey, result, goOn) {
  if (result === OK || (goOn && result !== UNMET)) return false;
  journeysEnded.add(1, { journey: journey, reason: result });
  return true;
}

function stepResult(res, success) {
  return success ? OK : res.status === 0 ? NO_ANSWER : NOT_SUCCESS;
}

",
    );
}

fn tables(out: &mut String, script: &Script) {
    c(
        out,
        "Data tables: each file is read once when the script starts, from DATA_DIR (-e DATA_DIR=…; by default the folder of this script), shared by every VU (SharedArray). Copy each file there under the name the workload gives it. Its values are not in this script.",
    );
    out.push_str("const DATA_DIR = (__ENV.DATA_DIR || \".\").replace(/\\/+$/, \"\");\n\n");
    if script.tables.iter().any(|t| !t.json) {
        out.push_str(
            "// A CSV file as trafficgen reads it: a header row, then rows; fields may be quoted (\"\" for a quote);
// lines end with LF or CRLF; empty lines are skipped.
function readCsv(text) {
  const rows = [];
  let row = [];
  let field = \"\";
  let quoted = false;
  const endRow = () => {
    row.push(field);
    if (row.length > 1 || row[0] !== \"\") rows.push(row);
    row = [];
    field = \"\";
  };
  text = text.replace(/^\\uFEFF/, \"\");
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '\"' && text[i + 1] === '\"') {
        field += '\"';
        i++;
      } else if (ch === '\"') {
        quoted = false;
      } else {
        field += ch;
      }
    } else if (ch === '\"') {
      quoted = true;
    } else if (ch === \",\") {
      row.push(field);
      field = \"\";
    } else if (ch === \"\\n\" || ch === \"\\r\") {
      if (ch === \"\\r\" && text[i + 1] === \"\\n\") i++;
      endRow();
    } else {
      field += ch;
    }
  }
  if (field !== \"\" || row.length > 0) endRow();
  const header = rows.shift() || [];
  return rows.map((fields) => {
    const record = {};
    header.forEach((name, j) => {
      record[name] = fields[j];
    });
    return record;
  });
}

",
        );
    }
    out.push_str(
        "function table(name, file, rows, columns) {
  if (rows.length === 0) throw new Error(\"data file \" + file + \" (table \" + name + \") has no rows\");
  for (const column of columns) {
    if (!Object.prototype.hasOwnProperty.call(rows[0], column)) {
      throw new Error(\"data file \" + file + \" (table \" + name + \") has no column \" + column);
    }
  }
  return rows;
}

",
    );
    out.push_str("const TABLES = [\n");
    for t in &script.tables {
        let columns: Vec<String> = read_columns(script, t).iter().map(|c| js_str(c)).collect();
        let file = js_str(&t.file);
        let parse = if t.json { "JSON.parse(open(path))" } else { "readCsv(open(path))" };
        let _ = writeln!(
            out,
            "  // {}: {}, order {}.\n  new SharedArray({}, () => {{\n    const path = DATA_DIR + \"/\" + {file};\n    return table({}, {file}, {parse}, [{}]);\n  }}),",
            super::super::text::comment_text(&t.name),
            super::super::text::comment_text(&t.file),
            t.order.as_str(),
            js_str(&t.name),
            js_str(&t.name),
            columns.join(", ")
        );
    }
    out.push_str("];\n\n");
    let orders: Vec<DataOrder> = script.tables.iter().map(|t| t.order).collect();
    c(
        out,
        "The row a new journey instance takes. trafficgen keeps one cursor per table for all instances; k6 VUs share no counter, so `sequential` and `unique` go by the iteration's number in the whole test (exec.scenario.iterationInTest): unique rows, in order, but iterations that draw a request or another journey skip theirs, so a `unique` table runs out sooner than trafficgen's. `unique` gives no row when it has run out: the journey does not start (journeys_not_started, reason no_data).",
    );
    out.push_str("function rowOf(index, order) {\n  const rows = TABLES[index];\n");
    if orders.contains(&DataOrder::Random) {
        out.push_str("  if (order === \"random\") return rows[Math.floor(Math.random() * rows.length)];\n");
    }
    out.push_str("  const n = exec.scenario.iterationInTest;\n");
    if orders.contains(&DataOrder::Unique) {
        out.push_str("  if (order === \"unique\") return n < rows.length ? rows[n] : undefined;\n");
    }
    out.push_str("  return rows[n % rows.length];\n}\n\n");
}

/// The columns the workload reads from table `t`.
fn read_columns<'a>(script: &'a Script, t: &super::super::journeys::Table) -> Vec<&'a str> {
    let index = script.tables.iter().position(|x| x.name == t.name).unwrap_or(0);
    let mut columns: Vec<&str> = Vec::new();
    for (g, _) in script.holes() {
        if let super::super::script::Gen::Data { table, column } = g
            && *table == index
            && !columns.contains(&column.as_str())
        {
            columns.push(column);
        }
    }
    columns
}

pub fn journey_name(name: &str) -> String {
    format!("journey_{name}")
}

/// One journey as a function: its steps in order, with its pauses.
pub fn journey(out: &mut String, script: &Script, index: usize) {
    let journey = &script.journeys[index];
    let name = js_str(&journey.name);
    let shown: Vec<String> = journey
        .steps
        .iter()
        .map(|s| match s {
            Step::Send { req, .. } => script.requests[*req].name.rsplit('/').next().unwrap_or_default().to_string(),
            Step::Pause(p) => pause_text(*p),
        })
        .collect();
    c(out, &format!("Journey {}: weight {}; {}.", journey.name, journey.weight, shown.join(", ")));
    let _ = writeln!(out, "function {}() {{", journey_name(&journey.name));
    out.push_str("  const rows = [];\n");
    for t in &journey.tables {
        let _ = writeln!(out, "  rows[{t}] = rowOf({t}, {});", js_str(script.tables[*t].order.as_str()));
        if script.tables[*t].order == DataOrder::Unique {
            let _ = writeln!(
                out,
                "  if (rows[{t}] === undefined) {{\n    journeysNotStarted.add(1, {{ journey: {name}, reason: \"no_data\" }});\n    return;\n  }}"
            );
        }
    }
    out.push_str("  const v = {};\n");
    for step in &journey.steps {
        match step {
            Step::Send { req, go_on } => {
                let _ = writeln!(
                    out,
                    "  if (ends({name}, {}(v, rows), {go_on})) return;",
                    function_name(&script.requests[*req])
                );
            }
            Step::Pause(p) => {
                let _ = writeln!(out, "  sleep({});", pause_expr(*p));
            }
        }
    }
    let _ = writeln!(out, "  journeysCompleted.add(1, {{ journey: {name} }});\n}}\n");
}

fn pause_expr(p: Pause) -> String {
    match p {
        Pause::Fixed(secs) => num(secs),
        Pause::Uniform(min, max) => format!("pauseUniform({}, {})", num(min), num(max)),
        Pause::Exponential(mean) => format!("pauseExponential({})", num(mean)),
    }
}

pub fn pause_text(p: Pause) -> String {
    match p {
        Pause::Fixed(secs) => format!("pause {} s", num(secs)),
        Pause::Uniform(min, max) => format!("pause {}–{} s", num(min), num(max)),
        Pause::Exponential(mean) => format!("pause ~{} s (exponential)", num(mean)),
    }
}
