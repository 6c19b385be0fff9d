//! The JavaScript a k6 script carries with it, written here rather than
//! imported: k6 must run without the internet, so no remote module
//! (jslib) is loaded. Each piece is written only when the script uses it.

use std::fmt::Write as _;

use super::super::script::{CapSource, Ctx, Gen, Script};
use super::super::text::{js_regex, js_str};
use super::c;

/// The random functions templates use (`random_int`, `choice`,
/// `random_string`, `uuid`): Math.random, as k6's own jslib does.
pub fn random(out: &mut String, script: &Script) {
    let uses = |f: &dyn Fn(&Gen) -> bool| script.uses(f);
    if uses(&|g| matches!(g, Gen::Int { .. })) {
        out.push_str(
            "// A whole number from min to max, both included.
function randomIntBetween(min, max) {
  return Math.floor(Math.random() * (max - min + 1)) + min;
}

",
        );
    }
    if uses(&|g| matches!(g, Gen::Choice(_))) {
        out.push_str(
            "function randomItem(items) {
  return items[Math.floor(Math.random() * items.length)];
}

",
        );
    }
    if uses(&|g| matches!(g, Gen::Str(_))) {
        out.push_str(
            "const ALNUM = \"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789\";

// n letters and digits.
function randomString(n) {
  let text = \"\";
  for (let i = 0; i < n; i++) text += ALNUM[Math.floor(Math.random() * ALNUM.length)];
  return text;
}

",
        );
    }
    if uses(&|g| matches!(g, Gen::Uuid)) {
        out.push_str(
            "// A random version 4 UUID.
function uuidv4() {
  const hex = \"0123456789abcdef\";
  let text = \"\";
  for (let i = 0; i < 36; i++) {
    if (i === 8 || i === 13 || i === 18 || i === 23) text += \"-\";
    else if (i === 14) text += \"4\";
    else if (i === 19) text += hex[8 + Math.floor(Math.random() * 4)];
    else text += hex[Math.floor(Math.random() * 16)];
  }
  return text;
}

",
        );
    }
}

/// Pools, the checks a captured value passes, and reading answers.
pub fn pools_and_captures(out: &mut String, script: &Script) {
    let captures = script.requests.iter().any(|r| !r.captures.is_empty());
    if !script.pools.is_empty() {
        c(
            out,
            "Pools. k6 runs every virtual user (VU) in its own JavaScript runtime, so a module-level array cannot be shared across VUs as trafficgen shares a pool: each VU keeps its own bounded pool (the newest `size` values), filled by its own captures and by the setup requests' captures (handed over by setup()). While a VU's pool is empty it sends the fallback, as trafficgen does while its shared pool is empty.",
        );
        out.push_str("const POOLS = {\n");
        for pool in &script.pools {
            let values: Vec<String> = pool.seed.iter().map(super::item).collect();
            let _ =
                writeln!(out, "  {}: {{ size: {}, values: [{}] }},", js_str(&pool.name), pool.size, values.join(", "));
        }
        out.push_str("};\n\n");
        out.push_str(
            "function poolPut(name, value) {
  const pool = POOLS[name];
  pool.values.push(value);
  if (pool.values.length > pool.size) pool.values.shift();
}

function poolPick(name) {
  const values = POOLS[name].values;
  return values.length === 0 ? undefined : values[Math.floor(Math.random() * values.length)];
}

",
        );
        if script.requests.iter().any(|r| !r.takes.is_empty()) {
            out.push_str(
                "// take(): the value picked is taken out of this VU's pool once the request is sent.
function poolTake(name, value) {
  const values = POOLS[name].values;
  const at = values.indexOf(value);
  if (at >= 0) values.splice(at, 1);
}

",
            );
        }
    }
    if !captures {
        return;
    }
    c(
        out,
        "A captured value is kept as trafficgen keeps it: a string or a number, not empty, at most maxLen bytes, not \".\" or \"..\", no control characters, only letters, digits and -._~ when urlSafe, and a safe absolute path when path; otherwise it is dropped.",
    );
    out.push_str(
        "function kept(value, maxLen, urlSafe, path) {
  if (typeof value !== \"string\" && typeof value !== \"number\") return undefined;
  const text = String(value);
  if (text === \"\" || text === \".\" || text === \"..\") return undefined;
  if (utf8Length(text) > maxLen) return undefined;
  if (urlSafe && !/^[A-Za-z0-9._~-]+$/.test(text)) return undefined;
  if (/[\\u0000-\\u001f\\u007f-\\u009f]/.test(text)) return undefined;
  if (path && !isSafePath(text)) return undefined;
  return value;
}

",
    );
    if script.requests.iter().flat_map(|r| &r.captures).any(|c| c.pool().is_some()) {
        out.push_str(
            "function capture(name, value, maxLen, urlSafe, path) {
  const value_ = kept(value, maxLen, urlSafe, path);
  if (value_ !== undefined) poolPut(name, value_);
}

",
        );
    }
    if !script.journeys.is_empty() {
        out.push_str(
            "// Into the journey instance's own variables `v`; a value that is not kept leaves the variable as it was.
function setVar(v, name, value, maxLen, urlSafe, path) {
  const value_ = kept(value, maxLen, urlSafe, path);
  if (value_ !== undefined) v[name] = value_;
}

",
        );
    }
    out.push_str(
        "function utf8Length(text) {
  let bytes = 0;
  for (const ch of text) {
    const code = ch.codePointAt(0);
    bytes += code < 0x80 ? 1 : code < 0x800 ? 2 : code < 0x10000 ? 3 : 4;
  }
  return bytes;
}

// The value at a JSON pointer's tokens in the answer, or undefined.
function jsonAt(res, tokens) {
  let node;
  try {
    node = res.json();
  } catch (e) {
    return undefined;
  }
  for (const token of tokens) {
    if (Array.isArray(node)) {
      if (!/^(0|[1-9][0-9]*)$/.test(token)) return undefined;
      node = node[Number(token)];
    } else if (node !== null && typeof node === \"object\" && Object.prototype.hasOwnProperty.call(node, token)) {
      node = node[token];
    } else {
      return undefined;
    }
  }
  return node;
}

// An answer header by its lower-case name, trimmed, or undefined.
function headerOf(res, name) {
  const key = Object.keys(res.headers).find((k) => k.toLowerCase() === name);
  return key === undefined ? undefined : String(res.headers[key]).trim();
}

",
    );
    if script.requests.iter().flat_map(|r| &r.captures).any(|c| matches!(c.source, CapSource::Body)) {
        out.push_str(
            "function bodyOf(res) {
  return typeof res.body === \"string\" && res.body !== \"\" ? res.body : undefined;
}

",
        );
    }
    let regexes: Vec<&str> = script.regexes().collect();
    if !regexes.is_empty() {
        c(
            out,
            "Captures by regular expression: the first group of the first match in the value's text, kept as text. trafficgen matches in linear time (Rust's regex); here JavaScript's engine matches, which backtracks, and a pattern that only Rust reads fails when the script starts.",
        );
        for (i, pattern) in regexes.iter().enumerate() {
            let (source, flags) = js_regex(pattern);
            let _ = writeln!(out, "const RE_{} = new RegExp({}, {});", i + 1, js_str(&source), js_str(&flags));
        }
        out.push_str(
            "
function group(value, re) {
  if (typeof value !== \"string\" && typeof value !== \"number\") return undefined;
  const match = re.exec(String(value));
  return match === null || match[1] === undefined ? undefined : match[1];
}

",
        );
    }
}

/// How values are written where they land, and the environment.
pub fn values(out: &mut String, script: &Script) {
    let holes = script.holes();
    if holes.iter().any(|(_, ctx)| matches!(ctx, Ctx::Url | Ctx::PathValue)) {
        out.push_str(
            "// Percent-encodes all but letters, digits and -._~, as trafficgen writes values in paths and queries.
function pct(value) {
  return encodeURIComponent(String(value)).replace(/[!'()*]/g, (ch) => \"%\" + ch.charCodeAt(0).toString(16).toUpperCase());
}

",
        );
    }
    if holes.iter().any(|(_, ctx)| *ctx == Ctx::PathValue) {
        out.push_str(
            "// A captured path in a path keeps its slashes (a Location followed) when it is a safe path.
function pathValue(value) {
  return isSafePath(String(value)) ? String(value) : pct(value);
}

",
        );
    }
    let path_captures = script.requests.iter().flat_map(|r| &r.captures).any(|c| c.path);
    if path_captures || holes.iter().any(|(_, ctx)| *ctx == Ctx::PathValue) {
        out.push_str(
            "// A safe absolute path (a Location to follow), as trafficgen checks it: `/` then path characters,
// `%` only before two hex digits, no empty segment (no `//`), no `.` or `..` segment (`%2e` too).
function isSafePath(text) {
  if (text.length < 2 || text[0] !== \"/\") return false;
  if (!/^[A-Za-z0-9\\-._~!$&'()*+,;=:@%\\/]+$/.test(text) || /%(?![0-9A-Fa-f]{2})/.test(text)) return false;
  const segments = text.slice(1).split(\"/\");
  return segments.every((s, i) => (s === \"\" ? i === segments.length - 1 : !/^(\\.|%2[eE]){1,2}$/.test(s)));
}

",
        );
    }
    if holes.iter().any(|(_, ctx)| *ctx == Ctx::JsonString) {
        out.push_str(
            "// A value inside a JSON string: escaped, without the quotes.
function jsonText(value) {
  const quoted = JSON.stringify(String(value));
  return quoted.slice(1, quoted.length - 1);
}

",
        );
    }
    if holes.iter().any(|(g, _)| matches!(g, Gen::Seq)) {
        c(
            out,
            "seq(): trafficgen counts 1, 2, 3… across the whole workload; k6 VUs share no counter, so each VU counts on its own, interleaved with the others (VU n gives n, n + MAX_VUS, n + 2·MAX_VUS…): unique, not consecutive.",
        );
        out.push_str(
            "let seqCount = 0;
function seq() {
  seqCount += 1;
  return (seqCount - 1) * MAX_VUS + exec.vu.idInTest;
}

",
        );
    }
    let mut env: Vec<&str> = Vec::new();
    for (g, _) in &holes {
        if let Gen::Env(name) = g
            && !env.contains(&name.as_str())
        {
            env.push(name);
        }
    }
    if !env.is_empty() {
        c(
            out,
            "env(): read from k6's environment when the script starts (`-e NAME=…` or the shell's), as trafficgen reads its own at load; the values are not in this script.",
        );
        out.push_str(
            "function requireEnv(name) {
  const value = __ENV[name];
  if (value === undefined) throw new Error(name + \" is not set: give it with -e \" + name + \"=… (the workload reads it with env())\");
  return value;
}

const ENV = {
",
        );
        for name in env {
            let _ = writeln!(out, "  {}: requireEnv({}),", js_str(name), js_str(name));
        }
        out.push_str("};\n\n");
    }
}
