// k6 script made by `trafficgen export --format k6` from the built-in orders workload
// (MIX=create_order=60,list_orders=25,get_order=15, ID_BUFFER_SIZE=50).
// Traffic: virtual users over 120 s: 0 → 20 users over 10 s, then 20 users for 110 s.
//
//   k6 run -e TARGET_URL=http://127.0.0.1:8080 script.k6.js
//
// trafficgen's users mode, a closed model: each VU is a virtual user that draws one arrival by
// weight as trafficgen draws it (a request, or a journey's steps one after the other with their
// pauses), runs it to its end, then pauses 1 to 3 s (uniform), and again. The stages count users,
// not requests. A closed model slows down with the target and hides its queueing (coordinated
// omission). Redirects are not followed.

import http from "k6/http";
import { sleep } from "k6";

const BASE_URL = (__ENV.TARGET_URL || "http://nginx").replace(/\/+$/, "");
const MAX_VUS = 512;

export const options = {
  scenarios: {
    traffic: {
      // trafficgen's users mode: a closed model, each VU a user that pauses between iterations.
      executor: "ramping-vus",
      startVUs: 0,
      stages: [
        { duration: "10s", target: 20 },
        { duration: "110s", target: 20 },
      ],
    },
  },
  // The SLOs. rps is a share of the mean target rate of the whole run (requests due / duration).
  thresholds: {
    "http_req_duration": ["p(95)<300"], // p95<300ms
    // rps>=90%: users mode has no target rate to compare with; left out.
  },
};

// A whole number from min to max, both included.
function randomIntBetween(min, max) {
  return Math.floor(Math.random() * (max - min + 1)) + min;
}

// Pools. k6 runs every virtual user (VU) in its own JavaScript runtime, so a module-level array
// cannot be shared across VUs as trafficgen shares a pool: each VU keeps its own bounded pool (the
// newest `size` values), filled by its own captures and by the setup requests' captures (handed
// over by setup()). While a VU's pool is empty it sends the fallback, as trafficgen does while its
// shared pool is empty.
const POOLS = {
  "order_ids": { size: 50, values: [] },
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

// create_order: POST /orders, weight 60.
function send_create_order() {
  const body = {
    "product_id": randomIntBetween(1, 10),
    "quantity": randomIntBetween(1, 5),
  };
  const res = http.request("POST", BASE_URL + "/orders", JSON.stringify(body), {
    headers: { "Content-Type": "application/json" },
    tags: { name: "create_order" },
    redirects: 0,
  });
  if (res.status >= 200 && res.status <= 299) {
    capture("order_ids", jsonAt(res, ["id"]), 64, true);
  }
}

// list_orders: GET /orders, weight 25.
function send_list_orders() {
  http.request("GET", BASE_URL + "/orders", null, {
    tags: { name: "list_orders" },
    redirects: 0,
  });
}

// get_order: GET /orders/{pool}, weight 15.
function send_get_order() {
  const pool_order_ids = poolPick("order_ids");
  if (pool_order_ids === undefined) {
    return send_create_order(); // the fallback, while order_ids is empty
  }
  http.request("GET", BASE_URL + "/orders/" + pct(pool_order_ids), null, {
    tags: { name: "get_order" },
    redirects: 0,
  });
}

// order_error: GET /orders/error?rate=0.5, an error request (sent by error injection only).
function send_order_error() {
  http.request("GET", BASE_URL + "/orders/error?rate=0.5", null, {
    tags: { name: "order_error" },
    redirects: 0,
  });
}

// The mix: each iteration draws one request in proportion to these weights.
const MIX = [
  [60, send_create_order],
  [25, send_list_orders],
  [15, send_get_order],
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

const USER_PAUSE = [1, 3]; // seconds, uniform

export default function () {
  draw()();
  sleep(USER_PAUSE[0] + Math.random() * (USER_PAUSE[1] - USER_PAUSE[0]));
}
