// k6 script made by `trafficgen export --format k6` from examples/workloads/journey-users.yaml.
// Traffic: virtual users over 390 s: 0 → 20 users over 60 s, then 20 users for 300 s, then 20 →
// 0 users over 30 s.
//
//   k6 run -e TARGET_URL=http://127.0.0.1:8080 -e DATA_DIR=. script.k6.js
//
// trafficgen's users mode, a closed model: each VU is a virtual user that draws one arrival by
// weight as trafficgen draws it (a request, or a journey's steps one after the other with their
// pauses), runs it to its end, then pauses 2 to 2 s (uniform), and again. The stages count users,
// not requests. A closed model slows down with the target and hides its queueing (coordinated
// omission). Redirects are not followed.

import http from "k6/http";
import { sleep } from "k6";
import exec from "k6/execution";
import { SharedArray } from "k6/data";
import { Counter } from "k6/metrics";

const BASE_URL = (__ENV.TARGET_URL || "http://nginx").replace(/\/+$/, "");
const MAX_VUS = 512 + 10000; // MAX_IN_FLIGHT + MAX_JOURNEYS

export const options = {
  scenarios: {
    traffic: {
      // trafficgen's users mode: a closed model, each VU a user that pauses between iterations.
      executor: "ramping-vus",
      startVUs: 0,
      stages: [
        { duration: "60s", target: 20 },
        { duration: "300s", target: 20 },
        { duration: "30s", target: 0 },
      ],
    },
  },
};

// A whole number from min to max, both included.
function randomIntBetween(min, max) {
  return Math.floor(Math.random() * (max - min + 1)) + min;
}

const ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

// n letters and digits.
function randomString(n) {
  let text = "";
  for (let i = 0; i < n; i++) text += ALNUM[Math.floor(Math.random() * ALNUM.length)];
  return text;
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
  // accounts: accounts.csv, order sequential.
  new SharedArray("accounts", () => {
    const path = DATA_DIR + "/" + "accounts.csv";
    return table("accounts", "accounts.csv", readCsv(open(path)), ["username", "password"]);
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
  const n = exec.scenario.iterationInTest;
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

// user_lifecycle/login: POST /login, a journey step: it returns how it went.
function step_user_lifecycle__login(v, rows) {
  const body = {
    "username": rows[0]["username"],
    "password": rows[0]["password"],
  };
  const res = http.request("POST", BASE_URL + "/login", JSON.stringify(body), {
    headers: { "Content-Type": "application/json" },
    tags: { name: "user_lifecycle/login" },
    redirects: 0,
  });
  const success = res.status >= 200 && res.status <= 299;
  if (success) {
    setVar(v, "token", jsonAt(res, ["token"]), 256, false);
  }
  return stepResult(res, success);
}

// user_lifecycle/create: POST /users, a journey step: it returns how it went.
function step_user_lifecycle__create(v, rows) {
  if (v["token"] === undefined) return UNMET; // a variable no step has captured
  const body = {
    "name": String(rows[0]["username"]) + "-" + randomString(6),
    "age": randomIntBetween(18, 90),
  };
  const res = http.request("POST", BASE_URL + "/users", JSON.stringify(body), {
    headers: { "Authorization": "Bearer " + v["token"], "Content-Type": "application/json" },
    tags: { name: "user_lifecycle/create" },
    redirects: 0,
    responseCallback: http.expectedStatuses(201),
  });
  const success = res.status === 201;
  if (success) {
    setVar(v, "user_id", jsonAt(res, ["id"]), 256, false);
    setVar(v, "user_path", headerOf(res, "location"), 256, false, true);
  }
  return stepResult(res, success);
}

// user_lifecycle/read: GET {user_path}, a journey step: it returns how it went.
function step_user_lifecycle__read(v, rows) {
  if (v["user_path"] === undefined || v["token"] === undefined) return UNMET; // a variable no step has captured
  const res = http.request("GET", BASE_URL + pathValue(v["user_path"]), null, {
    headers: { "Authorization": "Bearer " + v["token"] },
    tags: { name: "user_lifecycle/read" },
    redirects: 0,
  });
  const success = res.status >= 200 && res.status <= 299;
  return stepResult(res, success);
}

// user_lifecycle/update: PATCH /users/{user_id}, a journey step: it returns how it went.
function step_user_lifecycle__update(v, rows) {
  if (v["user_id"] === undefined || v["token"] === undefined) return UNMET; // a variable no step has captured
  const body = {
    "status": "away",
  };
  const res = http.request("PATCH", BASE_URL + "/users/" + pct(v["user_id"]), JSON.stringify(body), {
    headers: { "Authorization": "Bearer " + v["token"], "Content-Type": "application/json" },
    tags: { name: "user_lifecycle/update" },
    redirects: 0,
  });
  const success = res.status >= 200 && res.status <= 299;
  return stepResult(res, success);
}

// user_lifecycle/delete: DELETE /users/{user_id}, a journey step: it returns how it went.
function step_user_lifecycle__delete(v, rows) {
  if (v["user_id"] === undefined || v["token"] === undefined) return UNMET; // a variable no step has captured
  const res = http.request("DELETE", BASE_URL + "/users/" + pct(v["user_id"]), null, {
    headers: { "Authorization": "Bearer " + v["token"] },
    tags: { name: "user_lifecycle/delete" },
    redirects: 0,
    responseCallback: http.expectedStatuses(204),
  });
  const success = res.status === 204;
  return stepResult(res, success);
}

// Journey user_lifecycle: weight 1; login, pause 0.5–2 s, create, pause 0.5–2 s, read, pause ~1
// s (exponential), update, pause 0.5–2 s, delete.
function journey_user_lifecycle() {
  const rows = [];
  rows[0] = rowOf(0, "sequential");
  const v = {};
  if (ends("user_lifecycle", step_user_lifecycle__login(v, rows), false)) return;
  sleep(pauseUniform(0.5, 2));
  if (ends("user_lifecycle", step_user_lifecycle__create(v, rows), false)) return;
  sleep(pauseUniform(0.5, 2));
  if (ends("user_lifecycle", step_user_lifecycle__read(v, rows), false)) return;
  sleep(pauseExponential(1));
  if (ends("user_lifecycle", step_user_lifecycle__update(v, rows), false)) return;
  sleep(pauseUniform(0.5, 2));
  if (ends("user_lifecycle", step_user_lifecycle__delete(v, rows), false)) return;
  journeysCompleted.add(1, { journey: "user_lifecycle" });
}

// The mix: each iteration is one arrival, drawn in proportion to these weights: a request, or an
// instance of a journey.
const MIX = [
  [1, journey_user_lifecycle],
];
const MIX_TOTAL = 1;

function draw() {
  let roll = Math.random() * MIX_TOTAL;
  for (const [weight, send] of MIX) {
    if (roll < weight) return send;
    roll -= weight;
  }
  return MIX[MIX.length - 1][1];
}

const USER_PAUSE = [2, 2]; // seconds, uniform

export default function () {
  draw()();
  sleep(USER_PAUSE[0] + Math.random() * (USER_PAUSE[1] - USER_PAUSE[0]));
}
