// k6 script made by `trafficgen export --format k6` from tests/fixtures/export/journeys.yaml.
// Traffic: scenario error_injection over 60 s up to 10 requests/s: 10/s for 60 s.
//
//   k6 run -e TARGET_URL=http://127.0.0.1:8080 -e DATA_DIR=. script.k6.js
//
// The rate is of arrivals, as trafficgen's: each iteration is one arrival, drawn by weight as
// trafficgen draws it: one request, or one instance of a journey, whose steps it sends one after
// the other (each after the previous answer and its pause), with its own variables. Iterations
// start at an arrival rate (an open model: a slow target gets more in flight, not fewer). A journey
// holds its VU while it runs, pauses included, so maxVUs is MAX_IN_FLIGHT + MAX_JOURNEYS; k6 counts
// iterations it could not start as dropped_iterations, as trafficgen counts arrivals over its
// bounds. Redirects are not followed.

import http from "k6/http";
import { sleep } from "k6";
import exec from "k6/execution";
import encoding from "k6/encoding";
import { SharedArray } from "k6/data";
import { Counter } from "k6/metrics";

const BASE_URL = (__ENV.TARGET_URL || "http://nginx").replace(/\/+$/, "");
const MAX_VUS = 512 + 10000; // MAX_IN_FLIGHT + MAX_JOURNEYS

export const options = {
  scenarios: {
    traffic: {
      executor: "constant-arrival-rate",
      rate: 10,
      timeUnit: "1s",
      duration: "60s",
      preAllocatedVUs: 12,
      maxVUs: MAX_VUS,
    },
  },
  // The SLOs. rps is a share of the mean target rate of the whole run (requests due / duration).
  thresholds: {
    "http_req_duration": ["p(95)<300"], // p95<300ms
    "http_reqs": ["rate>=15.3"], // rps>=90%
    "http_req_duration{name:browse}": ["p(99)<1000"], // browse:p99<1s
  },
};

// Pools. k6 runs every virtual user (VU) in its own JavaScript runtime, so a module-level array
// cannot be shared across VUs as trafficgen shares a pool: each VU keeps its own bounded pool (the
// newest `size` values), filled by its own captures and by the setup requests' captures (handed
// over by setup()). While a VU's pool is empty it sends the fallback, as trafficgen does while its
// shared pool is empty.
const POOLS = {
  "item_ids": { size: 20, values: [] },
};

function poolPut(name, value) {
  const pool = POOLS[name];
  pool.values.push(value);
  if (pool.values.length > pool.size) pool.values.shift();
}

function poolPick(name) {
  const values = POOLS[name].values;
  return values.length === 0 ? undefined : values[Math.floor(Math.random() * values.length)];
}

// take(): the value picked is taken out of this VU's pool once the request is sent.
function poolTake(name, value) {
  const values = POOLS[name].values;
  const at = values.indexOf(value);
  if (at >= 0) values.splice(at, 1);
}

// A captured value is kept as trafficgen keeps it: a string or a number, not empty, at most maxLen
// bytes, not "." or "..", no control characters, only letters, digits and -._~ when urlSafe, and a
// safe absolute path when path; otherwise it is dropped.
function kept(value, maxLen, urlSafe, path) {
  if (typeof value !== "string" && typeof value !== "number") return undefined;
  const text = String(value);
  if (text === "" || text === "." || text === "..") return undefined;
  if (utf8Length(text) > maxLen) return undefined;
  if (urlSafe && !/^[A-Za-z0-9._~-]+$/.test(text)) return undefined;
  if (/[\u0000-\u001f\u007f-\u009f]/.test(text)) return undefined;
  if (path && !isSafePath(text)) return undefined;
  return value;
}

function capture(name, value, maxLen, urlSafe, path) {
  const value_ = kept(value, maxLen, urlSafe, path);
  if (value_ !== undefined) poolPut(name, value_);
}

// Into the journey instance's own variables `v`; a value that is not kept leaves the variable as it was.
function setVar(v, name, value, maxLen, urlSafe, path) {
  const value_ = kept(value, maxLen, urlSafe, path);
  if (value_ !== undefined) v[name] = value_;
}

function utf8Length(text) {
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
    } else if (node !== null && typeof node === "object" && Object.prototype.hasOwnProperty.call(node, token)) {
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

function bodyOf(res) {
  return typeof res.body === "string" && res.body !== "" ? res.body : undefined;
}

// Captures by regular expression: the first group of the first match in the value's text, kept as
// text. trafficgen matches in linear time (Rust's regex); here JavaScript's engine matches, which
// backtracks, and a pattern that only Rust reads fails when the script starts.
const RE_1 = new RegExp("id=([0-9a-f]+)", "");
const RE_2 = new RegExp("^([0-9]+)$", "");
const RE_3 = new RegExp("\"etag\": *\"([^\"]+)\"", "");

function group(value, re) {
  if (typeof value !== "string" && typeof value !== "number") return undefined;
  const match = re.exec(String(value));
  return match === null || match[1] === undefined ? undefined : match[1];
}

// Percent-encodes all but letters, digits and -._~, as trafficgen writes values in paths and queries.
function pct(value) {
  return encodeURIComponent(String(value)).replace(/[!'()*]/g, (ch) => "%" + ch.charCodeAt(0).toString(16).toUpperCase());
}

// A captured path in a path keeps its slashes (a Location followed) when it is a safe path.
function pathValue(value) {
  return isSafePath(String(value)) ? String(value) : pct(value);
}

// A safe absolute path (a Location to follow), as trafficgen checks it: `/` then path characters,
// `%` only before two hex digits, no empty segment (no `//`), no `.` or `..` segment (`%2e` too).
function isSafePath(text) {
  if (text.length < 2 || text[0] !== "/") return false;
  if (!/^[A-Za-z0-9\-._~!$&'()*+,;=:@%\/]+$/.test(text) || /%(?![0-9A-Fa-f]{2})/.test(text)) return false;
  const segments = text.slice(1).split("/");
  return segments.every((s, i) => (s === "" ? i === segments.length - 1 : !/^(\.|%2[eE]){1,2}$/.test(s)));
}

// env(): read from k6's environment when the script starts (`-e NAME=…` or the shell's), as
// trafficgen reads its own at load; the values are not in this script.
function requireEnv(name) {
  const value = __ENV[name];
  if (value === undefined) throw new Error(name + " is not set: give it with -e " + name + "=… (the workload reads it with env())");
  return value;
}

const ENV = {
  "TRAFFICGEN_ENV_PASSWORD": requireEnv("TRAFFICGEN_ENV_PASSWORD"),
};

// Data tables: each file is read once when the script starts, from DATA_DIR (-e DATA_DIR=…; by
// default the folder of this script), shared by every VU (SharedArray). Copy each file there under
// the name the workload gives it. Its values are not in this script.
const DATA_DIR = (__ENV.DATA_DIR || ".").replace(/\/+$/, "");

// A CSV file as trafficgen reads it: a header row, then rows; fields may be quoted ("" for a quote);
// lines end with LF or CRLF; empty lines are skipped.
function readCsv(text) {
  const rows = [];
  let row = [];
  let field = "";
  let quoted = false;
  const endRow = () => {
    row.push(field);
    if (row.length > 1 || row[0] !== "") rows.push(row);
    row = [];
    field = "";
  };
  text = text.replace(/^\uFEFF/, "");
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (ch === '"') {
        quoted = false;
      } else {
        field += ch;
      }
    } else if (ch === '"') {
      quoted = true;
    } else if (ch === ",") {
      row.push(field);
      field = "";
    } else if (ch === "\n" || ch === "\r") {
      if (ch === "\r" && text[i + 1] === "\n") i++;
      endRow();
    } else {
      field += ch;
    }
  }
  if (field !== "" || row.length > 0) endRow();
  const header = rows.shift() || [];
  return rows.map((fields) => {
    const record = {};
    header.forEach((name, j) => {
      record[name] = fields[j];
    });
    return record;
  });
}

function table(name, file, rows, columns) {
  if (rows.length === 0) throw new Error("data file " + file + " (table " + name + ") has no rows");
  for (const column of columns) {
    if (!Object.prototype.hasOwnProperty.call(rows[0], column)) {
      throw new Error("data file " + file + " (table " + name + ") has no column " + column);
    }
  }
  return rows;
}

const TABLES = [
  // members: members.csv, order unique.
  new SharedArray("members", () => {
    const path = DATA_DIR + "/" + "members.csv";
    return table("members", "members.csv", readCsv(open(path)), ["username"]);
  }),
  // items: items.json, order random.
  new SharedArray("items", () => {
    const path = DATA_DIR + "/" + "items.json";
    return table("items", "items.json", JSON.parse(open(path)), ["sku", "price"]);
  }),
];

// The row a new journey instance takes. trafficgen keeps one cursor per table for all instances; k6
// VUs share no counter, so `sequential` and `unique` go by the iteration's number in the whole test
// (exec.scenario.iterationInTest): unique rows, in order, but iterations that draw a request or
// another journey skip theirs, so a `unique` table runs out sooner than trafficgen's. `unique`
// gives no row when it has run out: the journey does not start (journeys_not_started, reason
// no_data).
function rowOf(index, order) {
  const rows = TABLES[index];
  if (order === "random") return rows[Math.floor(Math.random() * rows.length)];
  const n = exec.scenario.iterationInTest;
  if (order === "unique") return n < rows.length ? rows[n] : undefined;
  return rows[n % rows.length];
}

// A pause of any length from min to max seconds, each as likely.
function pauseUniform(min, max) {
  return min + Math.random() * (max - min);
}

// A pause exponentially distributed around a mean (the gaps of Poisson arrivals), at most 3600 s.
function pauseExponential(mean) {
  return Math.min(-mean * Math.log(1 - Math.random()), 3600);
}

// Journeys: what trafficgen counts per journey, as k6 counters (tagged by journey, and by reason
// for those that end early: not_success, no_answer, unmet; or no_data for one that could not
// start). A step returns how it went.
const journeysCompleted = new Counter("journeys_completed");
const journeysEnded = new Counter("journeys_ended");
const journeysNotStarted = new Counter("journeys_not_started");
const OK = "ok";
const NOT_SUCCESS = "not_success";
const NO_ANSWER = "no_answer";
const UNMET = "unmet";

// Whether the instance ends after a step that came to `result` (go on: a failure does not end it).
function ends(journey, result, goOn) {
  if (result === OK || (goOn && result !== UNMET)) return false;
  journeysEnded.add(1, { journey: journey, reason: result });
  return true;
}

function stepResult(res, success) {
  return success ? OK : res.status === 0 ? NO_ANSWER : NOT_SUCCESS;
}

// browse: GET /items, weight 3.
function send_browse() {
  http.request("GET", BASE_URL + "/items", null, {
    tags: { name: "browse" },
    redirects: 0,
  });
}

// drop_item: DELETE /items/{pool}, weight 1.
function send_drop_item() {
  const pool_item_ids = poolPick("item_ids");
  if (pool_item_ids === undefined) {
    return; // nothing is sent while item_ids is empty (no fallback); trafficgen counts these
  }
  poolTake("item_ids", pool_item_ids);
  http.request("DELETE", BASE_URL + "/items/" + pct(pool_item_ids), null, {
    tags: { name: "drop_item" },
    redirects: 0,
  });
}

// boom: GET /error, an error request (sent by error injection only).
function send_boom() {
  http.request("GET", BASE_URL + "/error", null, {
    tags: { name: "boom" },
    redirects: 0,
  });
}

// member/login: POST /login, a journey step: it returns how it went.
function step_member__login(v, rows) {
  const body = {
    "username": rows[0]["username"],
  };
  const res = http.request("POST", BASE_URL + "/login", JSON.stringify(body), {
    headers: { "Authorization": "Basic " + encoding.b64encode([rows[0]["username"], ":", ENV["TRAFFICGEN_ENV_PASSWORD"]].join("")), "Content-Type": "application/json" },
    tags: { name: "member/login" },
    redirects: 0,
  });
  const success = res.status >= 200 && res.status <= 299;
  if (success) {
    setVar(v, "token", jsonAt(res, ["token"]), 256, false);
    setVar(v, "session", group(headerOf(res, "set-session"), RE_1), 256, false);
  }
  return stepResult(res, success);
}

// member/create: POST /items, a journey step: it returns how it went.
function step_member__create(v, rows) {
  if (v["token"] === undefined) return UNMET; // a variable no step has captured
  const body = {
    "sku": rows[1]["sku"],
    "price": rows[1]["price"],
  };
  const res = http.request("POST", BASE_URL + "/items", JSON.stringify(body), {
    headers: { "Authorization": "Bearer " + v["token"], "Content-Type": "application/json" },
    tags: { name: "member/create" },
    redirects: 0,
    responseCallback: http.expectedStatuses(201),
  });
  const success = res.status === 201;
  if (success) {
    setVar(v, "item_path", headerOf(res, "location"), 256, false, true);
    setVar(v, "item_id", group(jsonAt(res, ["id"]), RE_2), 256, false);
    capture("item_ids", jsonAt(res, ["id"]), 256, false);
  }
  return stepResult(res, success);
}

// member/read: GET {item_path}, a journey step: it returns how it went.
function step_member__read(v, rows) {
  if (v["item_path"] === undefined || v["token"] === undefined || v["session"] === undefined) return UNMET; // a variable no step has captured
  const res = http.request("GET", BASE_URL + pathValue(v["item_path"]), null, {
    headers: { "Authorization": "Bearer " + v["token"], "X-Session": String(v["session"]) },
    tags: { name: "member/read" },
    redirects: 0,
  });
  const success = res.status >= 200 && res.status <= 299;
  if (success) {
    setVar(v, "etag", group(bodyOf(res), RE_3), 256, false);
  }
  return stepResult(res, success);
}

// member/remove: DELETE /items/{item_id}, a journey step: it returns how it went.
function step_member__remove(v, rows) {
  if (v["item_id"] === undefined || v["token"] === undefined || v["etag"] === undefined) return UNMET; // a variable no step has captured
  const res = http.request("DELETE", BASE_URL + "/items/" + pct(v["item_id"]), null, {
    headers: { "Authorization": "Bearer " + v["token"], "If-Match": String(v["etag"]) },
    tags: { name: "member/remove" },
    redirects: 0,
    responseCallback: http.expectedStatuses(204),
  });
  const success = res.status === 204;
  return stepResult(res, success);
}

// Journey member: weight 2; login, pause 2 s, create, pause 0.5–1.5 s, read, pause ~1 s
// (exponential), remove.
function journey_member() {
  const rows = [];
  rows[0] = rowOf(0, "unique");
  if (rows[0] === undefined) {
    journeysNotStarted.add(1, { journey: "member", reason: "no_data" });
    return;
  }
  rows[1] = rowOf(1, "random");
  const v = {};
  if (ends("member", step_member__login(v, rows), false)) return;
  sleep(2);
  if (ends("member", step_member__create(v, rows), false)) return;
  sleep(pauseUniform(0.5, 1.5));
  if (ends("member", step_member__read(v, rows), true)) return;
  sleep(pauseExponential(1));
  if (ends("member", step_member__remove(v, rows), false)) return;
  journeysCompleted.add(1, { journey: "member" });
}

// The mix: each iteration is one arrival, drawn in proportion to these weights: a request, or an
// instance of a journey.
const MIX = [
  [21, send_browse],
  [7, send_drop_item],
  [18, send_boom],
  [14, journey_member],
];
const MIX_TOTAL = 60;

function draw() {
  let roll = Math.random() * MIX_TOTAL;
  for (const [weight, send] of MIX) {
    if (roll < weight) return send;
    roll -= weight;
  }
  return MIX[MIX.length - 1][1];
}

export default function () {
  draw()();
}
