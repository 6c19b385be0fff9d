// k6 script made by `trafficgen export --format k6` from examples/workloads/users-crud.yaml.
// Traffic: scenario peak over 120 s up to 50 requests/s: 0 → 50/s over 30 s, then 50/s for 60 s,
// then 50 → 0/s over 30 s.
//
//   k6 run -e TARGET_URL=http://127.0.0.1:8080 script.k6.js
//
// Each iteration sends one request, drawn by weight as trafficgen draws it, and iterations start at
// an arrival rate (an open model: a slow target gets more requests in flight, not fewer). At most
// maxVUs (trafficgen's MAX_IN_FLIGHT) are in flight; k6 counts iterations it could not start as
// dropped_iterations, as trafficgen counts dropped requests. Redirects are not followed.

import http from "k6/http";
import exec from "k6/execution";

const BASE_URL = (__ENV.TARGET_URL || "http://nginx").replace(/\/+$/, "");
const MAX_VUS = 512;

export const options = {
  scenarios: {
    traffic: {
      executor: "ramping-arrival-rate",
      startRate: 0,
      timeUnit: "1s",
      stages: [
        { duration: "30s", target: 50 },
        { duration: "60s", target: 50 },
        { duration: "30s", target: 0 },
      ],
      preAllocatedVUs: 5,
      maxVUs: MAX_VUS,
    },
  },
  // The SLOs. rps is a share of the mean target rate of the whole run (requests due / duration).
  thresholds: {
    "http_req_duration": ["p(95)<300", "p(99)<1000"], // p95<300ms, p99<1s
    "http_req_failed": ["rate<0.01"], // error_rate<1%
    "http_reqs": ["rate>=35.625"], // rps>=95%
    "http_req_duration{name:create_user}": ["p(95)<200"], // create_user:p95<200ms
  },
};

// A whole number from min to max, both included.
function randomIntBetween(min, max) {
  return Math.floor(Math.random() * (max - min + 1)) + min;
}

function randomItem(items) {
  return items[Math.floor(Math.random() * items.length)];
}

const ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

// n letters and digits.
function randomString(n) {
  let text = "";
  for (let i = 0; i < n; i++) text += ALNUM[Math.floor(Math.random() * ALNUM.length)];
  return text;
}

// Pools. k6 runs every virtual user (VU) in its own JavaScript runtime, so a module-level array
// cannot be shared across VUs as trafficgen shares a pool: each VU keeps its own bounded pool (the
// newest `size` values), filled by its own captures and by the setup requests' captures (handed
// over by setup()). While a VU's pool is empty it sends the fallback, as trafficgen does while its
// shared pool is empty.
const POOLS = {
  "user_ids": { size: 200, values: [] },
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

// seq(): trafficgen counts 1, 2, 3… across the whole workload; k6 VUs share no counter, so each
// VU counts on its own, interleaved with the others (VU n gives n, n + MAX_VUS, n + 2·MAX_VUS…):
// unique, not consecutive.
let seqCount = 0;
function seq() {
  seqCount += 1;
  return (seqCount - 1) * MAX_VUS + exec.vu.idInTest;
}

// create_user: POST /users, weight 20.
function send_create_user() {
  const body = {
    "name": "user-" + randomString(8),
    "email": "user" + seq() + "@example.com",
    "age": randomIntBetween(18, 90),
  };
  const res = http.request("POST", BASE_URL + "/users", JSON.stringify(body), {
    headers: { "Content-Type": "application/json" },
    tags: { name: "create_user" },
    redirects: 0,
    responseCallback: http.expectedStatuses(201),
  });
  if (res.status === 201) {
    capture("user_ids", jsonAt(res, ["id"]), 256, false);
  }
}

// list_users: GET /users?limit={…}, weight 20.
function send_list_users() {
  http.request("GET", BASE_URL + "/users?limit=" + pct(randomIntBetween(5, 20)), null, {
    tags: { name: "list_users" },
    redirects: 0,
  });
}

// get_user: GET /users/{pool}, weight 40.
function send_get_user() {
  const pool_user_ids = poolPick("user_ids");
  if (pool_user_ids === undefined) {
    return send_create_user(); // the fallback, while user_ids is empty
  }
  http.request("GET", BASE_URL + "/users/" + pct(pool_user_ids), null, {
    tags: { name: "get_user" },
    redirects: 0,
  });
}

// update_user: PATCH /users/{pool}, weight 20.
function send_update_user() {
  const pool_user_ids = poolPick("user_ids");
  if (pool_user_ids === undefined) {
    return send_create_user(); // the fallback, while user_ids is empty
  }
  const body = {
    "age": randomIntBetween(18, 90),
    "status": randomItem(["active", "away", "busy"]),
  };
  http.request("PATCH", BASE_URL + "/users/" + pct(pool_user_ids), JSON.stringify(body), {
    headers: { "Content-Type": "application/json" },
    tags: { name: "update_user" },
    redirects: 0,
  });
}

// user_error: GET /users/error?rate=0.5, an error request (sent by error injection only).
function send_user_error() {
  http.request("GET", BASE_URL + "/users/error?rate=0.5", null, {
    tags: { name: "user_error" },
    redirects: 0,
  });
}

// The mix: each iteration draws one request in proportion to these weights.
const MIX = [
  [20, send_create_user],
  [20, send_list_users],
  [40, send_get_user],
  [20, send_update_user],
];
const MIX_TOTAL = 100;

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
