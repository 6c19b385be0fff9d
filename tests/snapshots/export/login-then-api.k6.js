// k6 script made by `trafficgen export --format k6` from examples/workloads/login-then-api.yaml.
// Traffic: scenario latency_degradation over 60 s up to 10 requests/s: 10/s for 60 s.
//
//   k6 run -e TARGET_URL=http://127.0.0.1:8080 script.k6.js
//
// Each iteration sends one request, drawn by weight as trafficgen draws it, and iterations start at
// an arrival rate (an open model: a slow target gets more requests in flight, not fewer). At most
// maxVUs (trafficgen's MAX_IN_FLIGHT) are in flight; k6 counts iterations it could not start as
// dropped_iterations, as trafficgen counts dropped requests. Redirects are not followed.
//
// Note: This scenario pauses sending at random for 0.1 s to 0.5 s at a time; k6 keeps its arrival
// rate steady and has no such pauses, so the rate here is not ragged.

import http from "k6/http";

const BASE_URL = (__ENV.TARGET_URL || "http://nginx").replace(/\/+$/, "");
const MAX_VUS = 512;

export const options = {
  scenarios: {
    traffic: {
      executor: "constant-arrival-rate",
      rate: 10,
      timeUnit: "1s",
      duration: "60s",
      preAllocatedVUs: 1,
      maxVUs: MAX_VUS,
    },
  },
  // The SLOs. rps is a share of the mean target rate of the whole run (requests due / duration).
  thresholds: {
    "http_req_duration{name:get_account}": ["p(99)<500"], // get_account:p99<500ms
    "http_req_failed": ["rate<0.01"], // error_rate<1%
  },
};

// Pools. k6 runs every virtual user (VU) in its own JavaScript runtime, so a module-level array
// cannot be shared across VUs as trafficgen shares a pool: each VU keeps its own bounded pool (the
// newest `size` values), filled by its own captures and by the setup requests' captures (handed
// over by setup()). While a VU's pool is empty it sends the fallback, as trafficgen does while its
// shared pool is empty.
const POOLS = {
  "token": { size: 1, values: [] },
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

// get_account: GET /account, weight 3.
function send_get_account() {
  const pool_token = poolPick("token");
  if (pool_token === undefined) {
    return; // nothing is sent while token is empty (no fallback); trafficgen counts these
  }
  http.request("GET", BASE_URL + "/account", null, {
    headers: { "Authorization": "Bearer " + pool_token },
    tags: { name: "get_account" },
    redirects: 0,
  });
}

// list_orders: GET /orders, weight 1.
function send_list_orders() {
  const pool_token = poolPick("token");
  if (pool_token === undefined) {
    return; // nothing is sent while token is empty (no fallback); trafficgen counts these
  }
  http.request("GET", BASE_URL + "/orders", null, {
    headers: { "Authorization": "Bearer " + pool_token },
    tags: { name: "list_orders" },
    redirects: 0,
  });
}

// login: POST /login, a setup request.
function send_login() {
  const body = {
    "username": "demo",
    "password": "demo",
  };
  const res = http.request("POST", BASE_URL + "/login", JSON.stringify(body), {
    headers: { "Content-Type": "application/json" },
    tags: { name: "login" },
    redirects: 0,
  });
  if (res.status >= 200 && res.status <= 299) {
    capture("token", jsonAt(res, ["token"]), 256, false);
  }
}

// The mix: each iteration draws one request in proportion to these weights.
const MIX = [
  [3, send_get_account],
  [1, send_list_orders],
];
const MIX_TOTAL = 4;

function draw() {
  let roll = Math.random() * MIX_TOTAL;
  for (const [weight, send] of MIX) {
    if (roll < weight) return send;
    roll -= weight;
  }
  return MIX[MIX.length - 1][1];
}

// Setup requests: trafficgen sends them before the traffic starts. Here setup() sends them once,
// and what they capture reaches every VU through setup()'s data.
function runSetup() {
  send_login();
}

export function setup() {
  runSetup();
  return { pools: { "token": POOLS["token"].values.slice() } };
}

// trafficgen sends the setup requests again every 600 s. A k6 setup() runs once, so each VU sends
// them again on its own every 600 s (with many VUs, that is more of them than trafficgen's one
// round).
const SETUP_EVERY_MS = 600000;
let adopted = false;
let setupDue = 0;

export default function (data) {
  if (!adopted) {
    adopted = true;
    for (const [name, values] of Object.entries(data.pools)) {
      for (const value of values) poolPut(name, value);
    }
    setupDue = Date.now() + SETUP_EVERY_MS;
  }
  if (Date.now() >= setupDue) {
    setupDue = Date.now() + SETUP_EVERY_MS;
    runSetup();
  }
  draw()();
}
