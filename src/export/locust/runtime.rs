//! The Python a Locust file carries with it: template functions, pools,
//! the checks a captured value passes, regexes, `env()`, data tables and
//! pauses. Each piece is written only when the script uses it.

use std::fmt::Write as _;

use super::super::journeys::{MAX_PAUSE_SECS, Pause, Step};
use super::super::script::{Ctx, Gen, Script};
use super::super::text::{num, py_str};
use super::c;
use crate::workload::model::DataOrder;

pub fn helpers(out: &mut String, script: &Script) {
    out.push_str(
        "ALNUM = \"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789\"
URL_SAFE = re.compile(\"[A-Za-z0-9._~-]+\")
CONTROL = re.compile(\"[\\x00-\\x1f\\x7f-\\x9f]\")
INDEX = re.compile(\"0|[1-9][0-9]*\")
SEQ = count(1)


def random_string(n):
    return \"\".join(random.choices(ALNUM, k=n))


def now():
    return datetime.now(timezone.utc).isoformat(timespec=\"milliseconds\").replace(\"+00:00\", \"Z\")


def seq():
    return next(SEQ)


def pct(value):
    \"\"\"Percent-encodes all but letters, digits and -._~, as trafficgen writes values in paths and queries.\"\"\"
    return quote(str(value), safe=\"\")


def json_text(value):
    \"\"\"A value inside a JSON string: escaped, without the quotes.\"\"\"
    return json.dumps(str(value), ensure_ascii=False)[1:-1]


def json_value(value):
    return json.dumps(value, ensure_ascii=False)


def compact(value):
    return json.dumps(value, ensure_ascii=False, separators=(\",\", \":\")).encode()


",
    );
    let holes = script.holes();
    let path_values = holes.iter().any(|(_, ctx)| *ctx == Ctx::PathValue);
    let captures = script.requests.iter().flat_map(|r| &r.captures).count() > 0;
    if path_values || script.requests.iter().flat_map(|r| &r.captures).any(|c| c.path) {
        out.push_str(
            "SAFE_PATH = re.compile(\"/[A-Za-z0-9\\\\-._~!$&'()*+,;=:@%/]+\")
DOT_SEGMENT = re.compile(\"(\\\\.|%2[eE]){1,2}\")
BAD_PERCENT = re.compile(\"%(?![0-9A-Fa-f]{2})\")


def is_safe_path(text):
    \"\"\"A safe absolute path (a Location to follow), as trafficgen checks it: `/` then path characters,
    `%` only before two hex digits, no empty segment (no `//`), no `.` or `..` segment (`%2e` too).\"\"\"
    if len(text) < 2 or not SAFE_PATH.fullmatch(text) or BAD_PERCENT.search(text):
        return False
    segments = text[1:].split(\"/\")
    return all(i == len(segments) - 1 if s == \"\" else not DOT_SEGMENT.fullmatch(s) for i, s in enumerate(segments))


",
        );
    }
    if path_values {
        out.push_str(
            "def path_value(value):
    \"\"\"A captured path in a path keeps its slashes (a Location followed) when it is a safe path.\"\"\"
    return str(value) if is_safe_path(str(value)) else pct(value)


",
        );
    }
    if !script.pools.is_empty() {
        out.push_str(
            "def pick(pool):
    return random.choice(pool) if pool else None


",
        );
    }
    if script.requests.iter().any(|r| !r.takes.is_empty()) {
        out.push_str(
            "def take(pool, value):
    \"\"\"take(): the value picked leaves the pool once the request is sent.\"\"\"
    try:
        pool.remove(value)
    except ValueError:
        pass


",
        );
    }
    if captures {
        out.push_str(
            "def json_at(res, tokens):
    \"\"\"The value at a JSON pointer's tokens in the answer, or None.\"\"\"
    try:
        node = res.json()
    except ValueError:
        return None
    for token in tokens:
        if isinstance(node, list):
            if not INDEX.fullmatch(token) or int(token) >= len(node):
                return None
            node = node[int(token)]
        elif isinstance(node, dict) and token in node:
            node = node[token]
        else:
            return None
    return node


def header_of(res, name):
    value = res.headers.get(name)
    return None if value is None else value.strip()


def body_of(res):
    return res.text or None


",
        );
        c(
            out,
            "",
            "A captured value is kept as trafficgen keeps it: a string or a number, not empty, at most max_len bytes, not \".\" or \"..\", no control characters, only letters, digits and -._~ when url_safe, and a safe absolute path when path; otherwise it is dropped (None).",
        );
        out.push_str(
            "def kept(value, max_len, url_safe, path=False):
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    text = value if isinstance(value, str) else json.dumps(value)
    if text in (\"\", \".\", \"..\") or len(text.encode()) > max_len:
        return None
    if (url_safe and not URL_SAFE.fullmatch(text)) or CONTROL.search(text):
        return None
    if path and not is_safe_path(text):
        return None
    return value


def capture(pool, value, max_len, url_safe, path=False):
    value = kept(value, max_len, url_safe, path)
    if value is not None:
        pool.append(value)


def set_var(v, name, value, max_len, url_safe, path=False):
    \"\"\"Into the journey instance's own variables; a value not kept leaves the variable as it was.\"\"\"
    value = kept(value, max_len, url_safe, path)
    if value is not None:
        v[name] = value


",
        );
    }
    let regexes: Vec<&str> = script.regexes().collect();
    if !regexes.is_empty() {
        c(
            out,
            "",
            "Captures by regular expression: the first group of the first match in the value's text, kept as text. trafficgen matches in linear time (Rust's regex); here Python's re matches, which backtracks, and a pattern that only Rust reads fails when the file loads.",
        );
        for (i, pattern) in regexes.iter().enumerate() {
            let _ = writeln!(out, "RE_{} = re.compile({})", i + 1, py_str(pattern));
        }
        out.push_str(
            "

def group(value, pattern):
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    match = pattern.search(value if isinstance(value, str) else json.dumps(value))
    return None if match is None else match.group(1)


",
        );
    }
    env(out, script);
    tables(out, script);
    pauses(out, script);
}

fn env(out: &mut String, script: &Script) {
    let mut names: Vec<&str> = Vec::new();
    for (g, _) in script.holes() {
        if let Gen::Env(name) = g
            && !names.contains(&name.as_str())
        {
            names.push(name);
        }
    }
    if names.is_empty() {
        return;
    }
    c(
        out,
        "",
        "env(): read from Locust's environment when the file loads, as trafficgen reads its own at load; the values are not in this file.",
    );
    out.push_str(
        "def require_env(name):
    value = os.environ.get(name)
    if value is None:
        raise RuntimeError(\"%s is not set: the workload reads it with env()\" % name)
    return value


ENV = {
",
    );
    for name in names {
        let _ = writeln!(out, "    {}: require_env({}),", py_str(name), py_str(name));
    }
    out.push_str("}\n\n\n");
}

fn tables(out: &mut String, script: &Script) {
    if script.tables.is_empty() {
        return;
    }
    c(
        out,
        "",
        "Data tables: each file is read once when the file loads, from DATA_DIR (by default the folder of this file). Copy each file there under the name the workload gives it. Its values are not in this file.",
    );
    out.push_str(
        "DATA_DIR = os.environ.get(\"DATA_DIR\") or os.path.dirname(os.path.abspath(__file__))


def read_table(name, file, columns):
    path = os.path.join(DATA_DIR, file)
    with open(path, newline=\"\", encoding=\"utf-8-sig\") as f:
        rows = json.load(f) if file.lower().endswith(\".json\") else list(csv.DictReader(f))
    if not rows:
        raise RuntimeError(\"data file %s (table %s) has no rows\" % (path, name))
    missing = [c for c in columns if c not in rows[0]]
    if missing:
        raise RuntimeError(\"data file %s (table %s) has no column %s\" % (path, name, \", \".join(missing)))
    return rows


TABLES = [
",
    );
    for (index, t) in script.tables.iter().enumerate() {
        let mut columns: Vec<String> = Vec::new();
        for (g, _) in script.holes() {
            if let Gen::Data { table, column } = g
                && *table == index
                && !columns.contains(&py_str(column))
            {
                columns.push(py_str(column));
            }
        }
        let _ = writeln!(
            out,
            "    read_table({}, {}, [{}]),  # order {}",
            py_str(&t.name),
            py_str(&t.file),
            columns.join(", "),
            t.order.as_str()
        );
    }
    out.push_str("]\nCURSORS = [0] * len(TABLES)\n\n\n");
    let orders: Vec<DataOrder> = script.tables.iter().map(|t| t.order).collect();
    out.push_str(
        "def row_of(index, order):
    \"\"\"The row a new journey instance takes: the next one (from the first again after the last),
    any one, or each once (None when none is left), as trafficgen's cursor per table.\"\"\"
    rows = TABLES[index]
",
    );
    if orders.contains(&DataOrder::Random) {
        out.push_str("    if order == \"random\":\n        return random.choice(rows)\n");
    }
    out.push_str("    n = CURSORS[index]\n");
    if orders.contains(&DataOrder::Unique) {
        out.push_str("    if order == \"unique\" and n >= len(rows):\n        return None\n");
    }
    out.push_str("    CURSORS[index] = n + 1\n    return rows[n % len(rows)]\n\n\n");
}

fn pauses(out: &mut String, script: &Script) {
    if script.journeys.is_empty() {
        return;
    }
    let exponential =
        script.journeys.iter().flat_map(|j| &j.steps).any(|s| matches!(s, Step::Pause(Pause::Exponential(_))));
    if exponential {
        let _ = writeln!(
            out,
            "def pause_exponential(mean):\n    \"\"\"Exponentially distributed around a mean (the gaps of Poisson arrivals), at most {} s.\"\"\"\n    return min(random.expovariate(1 / mean), {}) if mean > 0 else 0\n\n",
            num(MAX_PAUSE_SECS),
            num(MAX_PAUSE_SECS)
        );
    }
    out.push_str(
        "OK = \"ok\"
UNMET = \"unmet\"


def step_result(res, success):
    return OK if success else \"no_answer\" if res.status_code == 0 else \"not_success\"


def ends(journey, result, go_on):
    \"\"\"Whether the instance ends after a step that came to `result` (go on: a failure does not end it).\"\"\"
    if result == OK or (go_on and result != UNMET):
        return False
    journey_over(journey, \"ended \" + result)
    return True


",
    );
}
