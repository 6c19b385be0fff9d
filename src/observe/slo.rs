//! Service level objectives: the `SLO` syntax
//! (`p95<300ms,p99<1s,error_rate<1%,rps>=95%`, and per request name
//! `create_order:p95<200ms`) parsed into a typed list, and a pure evaluator
//! that judges one window's measurements against it.
//!
//! Nothing here keeps time or reads metrics: whoever owns the sliding
//! window fills a [`Window`] and calls [`evaluate`]. Exporters turn the same
//! list into k6 thresholds, Artillery `ensure` checks and Locust's exit check.

use std::fmt;

/// Most clauses in one `SLO` setting: each becomes a label value.
pub const MAX_SLOS: usize = 32;
/// Longest clause, in bytes.
const MAX_CLAUSE: usize = 200;
/// Largest latency objective, seconds (a day).
const MAX_LATENCY_SECS: f64 = 86_400.0;
/// Largest `rps` share of the target rate, percent.
const MAX_RPS_PERCENT: f64 = 1000.0;
/// Longest request name (as for workload names).
const MAX_NAME: usize = 64;

/// One objective: `[name:]metric op value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Slo {
    /// The request name it is about; `None`: all traffic.
    pub scope: Option<String>,
    pub metric: Metric,
    pub op: Op,
    /// In the metric's base unit: seconds for latencies, a fraction (0.01
    /// for 1%) for `error_rate` and `rps`.
    pub threshold: f64,
    /// The unit as written, to show the objective the way it was given.
    unit: Unit,
}

/// What an objective measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// A latency percentile (or the maximum), send to end of answer.
    Latency(Percentile),
    /// Share of requests that failed (not a success code, or no answer).
    ErrorRate,
    /// Requests answered per second (an HTTP answer of any status) as a
    /// share of the requests due per second.
    Rps,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Percentile {
    P50,
    P90,
    P95,
    P99,
    Max,
}

impl Percentile {
    /// As a fraction: 0.95 for p95, 1 for max.
    pub fn quantile(self) -> f64 {
        match self {
            Percentile::P50 => 0.5,
            Percentile::P90 => 0.9,
            Percentile::P95 => 0.95,
            Percentile::P99 => 0.99,
            Percentile::Max => 1.0,
        }
    }
}

impl Metric {
    const NAMES: &'static str = "p50, p90, p95, p99, max, error_rate, rps";

    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Latency(Percentile::P50) => "p50",
            Metric::Latency(Percentile::P90) => "p90",
            Metric::Latency(Percentile::P95) => "p95",
            Metric::Latency(Percentile::P99) => "p99",
            Metric::Latency(Percentile::Max) => "max",
            Metric::ErrorRate => "error_rate",
            Metric::Rps => "rps",
        }
    }

    fn parse(s: &str) -> Option<Metric> {
        Some(match s {
            "p50" => Metric::Latency(Percentile::P50),
            "p90" => Metric::Latency(Percentile::P90),
            "p95" => Metric::Latency(Percentile::P95),
            "p99" => Metric::Latency(Percentile::P99),
            "max" => Metric::Latency(Percentile::Max),
            "error_rate" => Metric::ErrorRate,
            "rps" => Metric::Rps,
            _ => return None,
        })
    }
}

/// How the measured value must compare with the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }

    /// Whether `value op threshold` holds.
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Op::Lt => value < threshold,
            Op::Le => value <= threshold,
            Op::Gt => value > threshold,
            Op::Ge => value >= threshold,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Ms,
    S,
    Percent,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Ms => "ms",
            Unit::S => "s",
            Unit::Percent => "%",
        }
    }

    /// Base units (seconds, fractions) per unit as written.
    fn scale(self) -> f64 {
        match self {
            Unit::Ms => 0.001,
            Unit::S => 1.0,
            Unit::Percent => 0.01,
        }
    }
}

impl Slo {
    /// The threshold in the unit it was written in (300 for `p95<300ms`).
    pub fn written_threshold(&self) -> f64 {
        // Rounded to hide float noise from the unit round trip (0.3 s → 300 ms).
        let value = self.threshold / self.unit.scale();
        let rounded = (value * 1e9).round() / 1e9;
        if rounded.is_finite() { rounded } else { value }
    }

    /// The same objective, however written (`p95<1s` is `p95<1000ms`).
    fn same_objective(&self, other: &Slo) -> bool {
        self.scope == other.scope
            && self.metric == other.metric
            && self.op == other.op
            && (self.threshold - other.threshold).abs() <= 1e-12 * self.threshold.abs().max(1.0)
    }

    /// The threshold in milliseconds, for latency objectives.
    pub fn threshold_ms(&self) -> f64 {
        (self.threshold * 1e3 * 1e6).round() / 1e6
    }
}

/// Normalised: `create_order:p95<200ms`. Also the `slo` label value.
impl fmt::Display for Slo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(scope) = &self.scope {
            write!(f, "{scope}:")?;
        }
        write!(f, "{}{}{}{}", self.metric.as_str(), self.op.as_str(), self.written_threshold(), self.unit.as_str())
    }
}

/// A clause that cannot be read, named by its position and text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SLO clause {number} {clause:?}: {reason}")]
pub struct SloError {
    /// 1-based position in the list.
    pub number: usize,
    /// The clause as written (shortened when long).
    pub clause: String,
    pub reason: String,
}

impl SloError {
    fn new(number: usize, clause: &str, reason: impl Into<String>) -> SloError {
        let mut shown: String = clause.chars().take(60).collect();
        if shown.len() < clause.len() {
            shown.push('…');
        }
        SloError { number, clause: shown, reason: reason.into() }
    }
}

/// Parses a comma-separated list of objectives. An empty or blank text is
/// an empty list. The first clause that cannot be read is the error.
pub fn parse(text: &str) -> Result<Vec<Slo>, SloError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut slos: Vec<Slo> = Vec::new();
    for (i, clause) in text.split(',').enumerate() {
        let number = i + 1;
        if number > MAX_SLOS {
            return Err(SloError::new(number, clause, format!("at most {MAX_SLOS} objectives")));
        }
        let slo = parse_clause(clause.trim()).map_err(|reason| SloError::new(number, clause.trim(), reason))?;
        if slos.iter().any(|s| s.same_objective(&slo)) {
            return Err(SloError::new(number, clause.trim(), "is given twice"));
        }
        slos.push(slo);
    }
    Ok(slos)
}

fn parse_clause(clause: &str) -> Result<Slo, String> {
    if clause.is_empty() {
        return Err("is empty (two commas in a row, or a comma at the end?)".into());
    }
    if clause.len() > MAX_CLAUSE {
        return Err(format!("is longer than {MAX_CLAUSE} bytes"));
    }
    let (scope, rest) = match clause.split_once(':') {
        Some((name, rest)) => {
            let name = name.trim();
            if !is_name(name) {
                return Err(format!(
                    "`{name}` is not a request name (a letter or `_`, then letters, digits or `_`, at most {MAX_NAME} long)"
                ));
            }
            (Some(name.to_string()), rest.trim())
        }
        None => (None, clause),
    };
    let op_at = rest
        .find(['<', '>', '=', '!'])
        .ok_or("needs a comparison: <, <=, > or >= (for example p95<300ms, error_rate<1%, rps>=95%)")?;
    let metric_text = rest[..op_at].trim();
    let metric = Metric::parse(metric_text).ok_or_else(|| {
        if metric_text.is_empty() {
            format!("names no metric before the comparison; metrics: {}", Metric::NAMES)
        } else {
            format!("unknown metric `{metric_text}`; metrics: {}", Metric::NAMES)
        }
    })?;
    let after = &rest[op_at..];
    let (op, value_text) = if let Some(v) = after.strip_prefix("<=") {
        (Op::Le, v)
    } else if let Some(v) = after.strip_prefix(">=") {
        (Op::Ge, v)
    } else if let Some(v) = after.strip_prefix('<') {
        (Op::Lt, v)
    } else if let Some(v) = after.strip_prefix('>') {
        (Op::Gt, v)
    } else {
        return Err("the comparison must be <, <=, > or >=".into());
    };
    let value_text = value_text.trim();
    let digits_end = value_text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(value_text.len());
    let (number_text, unit_text) = value_text.split_at(digits_end);
    let unit_text = unit_text.trim();
    let example = match metric {
        Metric::Latency(_) => format!("{}<300ms or {}<1.5s", metric.as_str(), metric.as_str()),
        Metric::ErrorRate => "error_rate<1%".to_string(),
        Metric::Rps => "rps>=95% (of the target rate)".to_string(),
    };
    let number: f64 = match number_text.parse::<f64>() {
        Ok(n) if n.is_finite() && !number_text.starts_with('.') && !number_text.ends_with('.') => n,
        _ if number_text.is_empty() => {
            return Err(format!("needs a number after `{}`, for example {example}", op.as_str()));
        }
        _ => return Err(format!("`{number_text}` is not a number, for example {example}")),
    };
    let unit = match (metric, unit_text) {
        (Metric::Latency(_), "ms") => Unit::Ms,
        (Metric::Latency(_), "s") => Unit::S,
        (Metric::ErrorRate | Metric::Rps, "%") => Unit::Percent,
        (Metric::Latency(_), "") => return Err(format!("give the latency a unit, ms or s: {example}")),
        (Metric::Latency(_), other) => {
            return Err(format!("unknown unit `{other}`: a latency is in ms or s, for example {example}"));
        }
        (_, "") => return Err(format!("give {} in percent: {example}", metric.as_str())),
        (_, other) => {
            return Err(format!("unknown unit `{other}`: {} is in percent, for example {example}", metric.as_str()));
        }
    };
    let threshold = number * unit.scale();
    match metric {
        Metric::Latency(_) if threshold > MAX_LATENCY_SECS => {
            return Err(format!("a latency objective is at most {MAX_LATENCY_SECS} s (a day)"));
        }
        Metric::ErrorRate if number > 100.0 => return Err("error_rate is from 0% to 100%".into()),
        Metric::Rps if number > MAX_RPS_PERCENT => {
            return Err(format!("rps is a share of the target rate, from 0% to {MAX_RPS_PERCENT}%"));
        }
        _ => {}
    }
    Ok(Slo { scope, metric, op, threshold, unit })
}

fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= MAX_NAME
}

/// Checks that every scoped objective names one of `names`; the error
/// names the clause and lists the names there are.
pub fn check_scopes(slos: &[Slo], names: &[&str]) -> Result<(), SloError> {
    for (i, slo) in slos.iter().enumerate() {
        if let Some(scope) = &slo.scope
            && !names.contains(&scope.as_str())
        {
            return Err(SloError::new(
                i + 1,
                &slo.to_string(),
                format!("no request is named `{scope}` (requests: {})", names.join(", ")),
            ));
        }
    }
    Ok(())
}

/// Latencies of a window, seconds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Latencies {
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Latencies {
    pub fn get(&self, p: Percentile) -> f64 {
        match p {
            Percentile::P50 => self.p50,
            Percentile::P90 => self.p90,
            Percentile::P95 => self.p95,
            Percentile::P99 => self.p99,
            Percentile::Max => self.max,
        }
    }
}

/// What was measured over one window, for all traffic or one request name.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Measured {
    /// Requests completed (answered or failed) in the window.
    pub count: u64,
    /// Of those, the ones that failed.
    pub errors: u64,
    /// Latencies of the completed requests; `None` without any.
    pub latency: Option<Latencies>,
    /// Requests per second answered (any status) over the window: a
    /// request sent and never answered is not throughput.
    pub answered_rps: f64,
    /// Requests per second that were due (for one name: its share).
    pub target_rps: f64,
}

/// One window: all traffic, and each request name that had any.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Window {
    pub overall: Measured,
    pub by_name: Vec<(String, Measured)>,
}

impl Window {
    fn measured(&self, scope: Option<&str>) -> Option<&Measured> {
        match scope {
            None => Some(&self.overall),
            Some(name) => self.by_name.iter().find(|(n, _)| n == name).map(|(_, m)| m),
        }
    }
}

/// How an objective fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Met,
    Missed,
    /// Nothing to judge: no request in the window (or no target rate).
    NoData,
}

/// An objective's measured value (base units, as [`Slo::threshold`]) and outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub value: Option<f64>,
    pub outcome: Outcome,
    /// With [`Outcome::NoData`], why there was nothing to judge.
    pub no_data: Option<&'static str>,
}

impl Verdict {
    /// Before anything was measured.
    pub const NOTHING_YET: Verdict = Verdict { value: None, outcome: Outcome::NoData, no_data: Some(NOTHING_YET) };
}

/// Why an objective has no data before the first window.
const NOTHING_YET: &str = "no window measured yet";

/// Judges each objective against the window, in order.
pub fn evaluate(slos: &[Slo], window: &Window) -> Vec<Verdict> {
    slos.iter()
        .map(|slo| {
            let measured = window.measured(slo.scope.as_deref());
            let value = measured.and_then(|m| measure(slo.metric, m));
            match value {
                None => Verdict { value, outcome: Outcome::NoData, no_data: Some(no_data(slo.metric, measured)) },
                Some(v) if slo.op.holds(v, slo.threshold) => Verdict { value, outcome: Outcome::Met, no_data: None },
                Some(_) => Verdict { value, outcome: Outcome::Missed, no_data: None },
            }
        })
        .collect()
}

fn measure(metric: Metric, m: &Measured) -> Option<f64> {
    match metric {
        Metric::Latency(p) => m.latency.filter(|_| m.count > 0).map(|l| l.get(p)),
        Metric::ErrorRate => (m.count > 0).then(|| m.errors.min(m.count) as f64 / m.count as f64),
        Metric::Rps => (m.target_rps > 0.0 && m.target_rps.is_finite() && m.answered_rps.is_finite())
            .then(|| m.answered_rps / m.target_rps),
    }
    .filter(|v| v.is_finite())
}

/// Why [`measure`] found nothing, in words for a table or `/status`.
fn no_data(metric: Metric, measured: Option<&Measured>) -> &'static str {
    let Some(m) = measured else {
        return "no request of the running workload has this name";
    };
    match metric {
        // Requests completed, yet no latency: a latency is of an answer (or
        // of a wait that timed out), and each failed without one (refused).
        Metric::Latency(_) if m.count > 0 && m.latency.is_none() => "no request was answered",
        Metric::Latency(_) | Metric::ErrorRate if m.count == 0 => "no request completed in the window",
        Metric::Rps if m.target_rps.is_nan() || m.target_rps <= 0.0 => "no request was due in the window",
        _ => "the measured value is not a number",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse(text).expect_err(text).to_string()
    }

    #[test]
    fn the_example_parses_into_typed_objectives() {
        let slos = parse("p95<300ms,p99<1s,error_rate<1%,rps>=95%").unwrap();
        assert_eq!(slos.len(), 4);
        assert_eq!(slos[0].metric, Metric::Latency(Percentile::P95));
        assert_eq!(slos[0].op, Op::Lt);
        assert!((slos[0].threshold - 0.3).abs() < 1e-12);
        assert_eq!(slos[1].threshold, 1.0);
        assert_eq!(slos[2].metric, Metric::ErrorRate);
        assert!((slos[2].threshold - 0.01).abs() < 1e-12);
        assert_eq!((slos[3].metric, slos[3].op), (Metric::Rps, Op::Ge));
        assert!((slos[3].threshold - 0.95).abs() < 1e-12);
        assert!(slos.iter().all(|s| s.scope.is_none()));
        let shown: Vec<String> = slos.iter().map(Slo::to_string).collect();
        assert_eq!(shown, ["p95<300ms", "p99<1s", "error_rate<1%", "rps>=95%"]);
    }

    #[test]
    fn per_name_objectives_spaces_and_every_operator() {
        let slos = parse(" create_order : p95 < 200 ms , max<=2.5s,p50>1ms, p90 >= 0.5 ms").unwrap();
        assert_eq!(slos[0].scope.as_deref(), Some("create_order"));
        assert_eq!(slos[0].to_string(), "create_order:p95<200ms");
        assert_eq!(slos[1].to_string(), "max<=2.5s");
        assert_eq!(slos[2].op, Op::Gt);
        assert_eq!(slos[3].to_string(), "p90>=0.5ms");
        assert_eq!(slos[3].threshold_ms(), 0.5);
        assert_eq!(parse("").unwrap(), Vec::new());
        assert_eq!(parse("   ").unwrap(), Vec::new());
    }

    #[test]
    fn each_mistake_names_its_clause() {
        let cases = [
            ("p95<300ms,p99<1", "clause 2 \"p99<1\": give the latency a unit"),
            ("p95<300ms,,p99<1s", "clause 2 \"\": is empty"),
            ("p95<300ms,", "clause 2 \"\": is empty"),
            ("p96<300ms", "unknown metric `p96`"),
            ("p95=300ms", "the comparison must be"),
            ("p95 300ms", "needs a comparison"),
            ("<300ms", "names no metric"),
            ("p95<", "needs a number"),
            ("p95<abc", "needs a number"),
            ("p95<1.2.3ms", "`1.2.3` is not a number"),
            ("p95<-5ms", "needs a number"),
            ("p95<300us", "unknown unit `us`"),
            ("error_rate<1", "give error_rate in percent"),
            ("error_rate<1ms", "unknown unit `ms`"),
            ("error_rate<101%", "from 0% to 100%"),
            ("rps>=2000%", "share of the target rate"),
            ("p95<100000s", "at most"),
            ("9lives:p95<1s", "`9lives` is not a request name"),
            ("a b:p95<1s", "is not a request name"),
            ("p95<1s,p95<1000ms", "clause 2 \"p95<1000ms\": is given twice"),
            ("p95<1e3ms", "unknown unit `e3ms`"),
            ("p95<NaNms", "needs a number"),
        ];
        for (text, expected) in cases {
            let e = err(text);
            assert!(e.contains(expected), "{text}: {e}");
            assert!(!e.contains('\n'), "one line: {e}");
        }
        let many: Vec<String> = (1..=MAX_SLOS + 1).map(|i| format!("p95<{i}ms")).collect();
        let many = many.join(",");
        assert!(err(&many).contains("at most 32"), "{}", err(&many));
        let long = format!("p95<{}ms", "1".repeat(300));
        let e = err(&long);
        assert!(e.contains("longer than") && e.len() < 200, "{e}");
    }

    #[test]
    fn scopes_are_checked_against_the_request_names() {
        let slos = parse("p95<1s,create_order:p99<2s").unwrap();
        let names = ["create_order", "list_orders"];
        assert_eq!(check_scopes(&slos, &names), Ok(()));
        let slos = parse("p95<1s,create_ordr:p99<2s").unwrap();
        let e = check_scopes(&slos, &names).unwrap_err().to_string();
        assert!(e.contains("clause 2") && e.contains("create_ordr") && e.contains("create_order, list_orders"), "{e}");
    }

    fn measured(count: u64, errors: u64, p95: f64, achieved: f64, target: f64) -> Measured {
        Measured {
            count,
            errors,
            latency: Some(Latencies { p50: p95 / 2.0, p90: p95 * 0.9, p95, p99: p95 * 2.0, max: p95 * 4.0 }),
            answered_rps: achieved,
            target_rps: target,
        }
    }

    #[test]
    fn the_evaluator_gives_each_objective_its_value_and_verdict() {
        let slos =
            parse("p95<300ms,p99<1s,error_rate<1%,rps>=95%,get_order:p95<100ms,get_order:error_rate<=10%").unwrap();
        let window = Window {
            overall: measured(1000, 20, 0.25, 9.6, 10.0),
            by_name: vec![("get_order".into(), measured(100, 10, 0.15, 1.5, 1.5))],
        };
        let verdicts = evaluate(&slos, &window);
        let outcomes: Vec<Outcome> = verdicts.iter().map(|v| v.outcome).collect();
        assert_eq!(
            outcomes,
            [Outcome::Met, Outcome::Met, Outcome::Missed, Outcome::Met, Outcome::Missed, Outcome::Met]
        );
        let values: Vec<f64> = verdicts.iter().map(|v| v.value.unwrap()).collect();
        assert_eq!(values[0], 0.25);
        assert_eq!(values[1], 0.5);
        assert_eq!(values[2], 0.02);
        assert!((values[3] - 0.96).abs() < 1e-12);
        assert_eq!(values[5], 0.1, "<= holds at equality");
    }

    #[test]
    fn no_requests_or_no_target_is_no_data_never_a_division_by_zero() {
        let slos = parse("p95<1s,error_rate<1%,rps>=95%,unknown_name:p95<1s").unwrap();
        let empty = Window { overall: Measured::default(), by_name: Vec::new() };
        let reasons: Vec<Option<&str>> = evaluate(&slos, &empty)
            .into_iter()
            .map(|v| {
                assert_eq!((v.value, v.outcome), (None, Outcome::NoData));
                v.no_data
            })
            .collect();
        assert_eq!(
            reasons,
            [
                Some("no request completed in the window"),
                Some("no request completed in the window"),
                Some("no request was due in the window"),
                Some("no request of the running workload has this name"),
            ]
        );
        let odd = Window {
            overall: Measured { count: 1, errors: 5, latency: None, answered_rps: f64::NAN, target_rps: 0.0 },
            by_name: Vec::new(),
        };
        let verdicts = evaluate(&slos, &odd);
        assert_eq!(verdicts[0].outcome, Outcome::NoData);
        assert_eq!(verdicts[0].no_data, Some("no request was answered"));
        assert_eq!(verdicts[1].value, Some(1.0), "errors never above the count");
        assert_eq!((verdicts[1].outcome, verdicts[1].no_data), (Outcome::Missed, None));
        assert_eq!(verdicts[2].outcome, Outcome::NoData);
    }

    #[test]
    fn requests_sent_and_never_answered_are_no_throughput() {
        // A dead target: every request failed at once, none answered.
        let slos = parse("rps>=95%,p99<1s,error_rate<1%").unwrap();
        let dead = Window {
            overall: Measured { count: 200, errors: 200, latency: None, answered_rps: 0.0, target_rps: 20.0 },
            by_name: Vec::new(),
        };
        let verdicts = evaluate(&slos, &dead);
        assert_eq!((verdicts[0].value, verdicts[0].outcome), (Some(0.0), Outcome::Missed));
        assert_eq!(verdicts[1].outcome, Outcome::NoData);
        assert_eq!((verdicts[2].value, verdicts[2].outcome), (Some(1.0), Outcome::Missed));
    }
}
