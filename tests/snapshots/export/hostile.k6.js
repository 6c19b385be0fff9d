// k6 script made by `trafficgen export --format k6` from tests/fixtures/export/hostile.yaml.
// Traffic: scenario error_injection over 90 s up to 7.5 requests/s: 0 → 7.5/s over 1.5 s, then
// 7.5/s for 88.5 s.
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
      // Rates are whole numbers of iterations per timeUnit: 10 s here, for rates with fractions.
      executor: "ramping-arrival-rate",
      startRate: 0,
      timeUnit: "10s",
      stages: [
        { duration: "1500ms", target: 75 },
        { duration: "88500ms", target: 75 },
      ],
      preAllocatedVUs: 1,
      maxVUs: MAX_VUS,
    },
  },
  // The SLOs. rps is a share of the mean target rate of the whole run (requests due / duration).
  thresholds: {
    "http_req_duration": ["p(50)<=20", "max<2000"], // p50<=20ms, max<2s
    "http_req_failed{name:create}": ["rate<0.01"], // create:error_rate<1%
    "http_reqs{name:read}": ["rate>=0.744"], // read:rps>=50%
    "http_reqs{name:broken}": ["rate>=0.022"], // broken:rps>=1%
    "http_req_duration{name:raw}": ["p(90)>1"], // raw:p90>1ms
    // login:rps>=1%: `login` is never drawn by weight, so it has no target rate to compare with;
    // left out.
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

// A random version 4 UUID.
function uuidv4() {
  const hex = "0123456789abcdef";
  let text = "";
  for (let i = 0; i < 36; i++) {
    if (i === 8 || i === 13 || i === 18 || i === 23) text += "-";
    else if (i === 14) text += "4";
    else if (i === 19) text += hex[8 + Math.floor(Math.random() * 4)];
    else text += hex[Math.floor(Math.random() * 16)];
  }
  return text;
}

// Pools. k6 runs every virtual user (VU) in its own JavaScript runtime, so a module-level array
// cannot be shared across VUs as trafficgen shares a pool: each VU keeps its own bounded pool (the
// newest `size` values), filled by its own captures and by the setup requests' captures (handed
// over by setup()). While a VU's pool is empty it sends the fallback, as trafficgen does while its
// shared pool is empty.
const POOLS = {
  "tokens": { size: 3, values: ["seed\"quote", "back\\slash", 42] },
  "ids": { size: 50, values: [] },
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

// A value inside a JSON string: escaped, without the quotes.
function jsonText(value) {
  const quoted = JSON.stringify(String(value));
  return quoted.slice(1, quoted.length - 1);
}

// seq(): trafficgen counts 1, 2, 3… across the whole workload; k6 VUs share no counter, so each
// VU counts on its own, interleaved with the others (VU n gives n, n + MAX_VUS, n + 2·MAX_VUS…):
// unique, not consecutive.
let seqCount = 0;
function seq() {
  seqCount += 1;
  return (seqCount - 1) * MAX_VUS + exec.vu.idInTest;
}

// create: POST /users/it's/(a)*!$&+,;=:@?q=a%20b%26c%3Dd%2F%C3%A9%22%27%5C&n={…}, weight 3.
function send_create() {
  const pool_tokens = poolPick("tokens");
  if (pool_tokens === undefined) {
    return; // nothing is sent while tokens is empty (no fallback); trafficgen counts these
  }
  const body = {
    "name": "line\nbreak\ttab \u2028 separator \u0001 control",
    "nested": { "list": [1, "two", null, true, 1500.0], "key \"with\" quotes": randomItem(["a\"b", "c'd", "x,y", 7]) },
    "when": new Date().toISOString(),
    "at": Date.now(),
    "n": seq(),
  };
  const res = http.request("POST", BASE_URL + "/users/it's/(a)*!$&+,;=:@?q=a%20b%26c%3Dd%2F%C3%A9%22%27%5C&n=" + pct(randomIntBetween(-5000000000, 5000000000)), JSON.stringify(body), {
    headers: { "X-Quote": "\"double\" 'single' `back` \\ */ # -- ${injected} {{ not a template", "Authorization": "Bearer " + pool_tokens, "Content-Type": "application/json" },
    tags: { name: "create" },
    redirects: 0,
  });
  if (res.status >= 200 && res.status <= 299) {
    capture("ids", headerOf(res, "location"), 64, true);
    capture("ids", jsonAt(res, ["data", "0", "a/b"]), 256, false);
  }
}

// read: GET /users/{pool}/{…}, weight 2.
function send_read() {
  const pool_ids = poolPick("ids");
  if (pool_ids === undefined) {
    return send_create(); // the fallback, while ids is empty
  }
  http.request("GET", BASE_URL + "/users/" + pct(pool_ids) + "/" + pct(uuidv4()), null, {
    tags: { name: "read" },
    redirects: 0,
  });
}

// raw: PUT /raw, weight 1.
function send_raw() {
  const pool_ids = poolPick("ids");
  const pool_tokens = poolPick("tokens");
  if (pool_ids === undefined || pool_tokens === undefined) {
    return send_create(); // the fallback, while ids or tokens is empty
  }
  http.request("PUT", BASE_URL + "/raw", "{\"id\": " + JSON.stringify(pool_ids) + ", \"note\": \"x " + jsonText(pool_tokens) + " \\\"q\\\"\", \"s\": " + JSON.stringify(randomString(4)) + "}", {
    headers: { "Content-Type": "application/json" },
    tags: { name: "raw" },
    redirects: 0,
  });
}

// text: POST /text, weight 1.
function send_text() {
  http.request("POST", BASE_URL + "/text", "\"\"\" ''' */ <!-- " + randomItem(["a", "b"]) + " --> \\", {
    headers: { "Content-Type": "text/plain" },
    tags: { name: "text" },
    redirects: 0,
  });
}

// broken: DELETE /broken, an error request (sent by error injection only).
function send_broken() {
  http.request("DELETE", BASE_URL + "/broken", null, {
    tags: { name: "broken" },
    redirects: 0,
  });
}

// login: POST /login, a setup request.
function send_login() {
  const body = {
    "username": "u\"s'e`r ${x} */ \"\"\" ''' </script>",
    "password": "demo",
  };
  const res = http.request("POST", BASE_URL + "/login", JSON.stringify(body), {
    headers: { "Content-Type": "application/json" },
    tags: { name: "login" },
    redirects: 0,
  });
  if (res.status >= 200 && res.status <= 299) {
    capture("tokens", jsonAt(res, ["token"]), 256, false);
  }
}

// The mix: each iteration draws one request in proportion to these weights.
const MIX = [
  [3, send_create],
  [2, send_read],
  [1, send_raw],
  [1, send_text],
  [3, send_broken],
];
const MIX_TOTAL = 10;

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
  return { pools: { "tokens": POOLS["tokens"].values.slice() } };
}

// trafficgen sends the setup requests again every 30 s. A k6 setup() runs once, so each VU sends
// them again on its own every 30 s (with many VUs, that is more of them than trafficgen's one
// round).
const SETUP_EVERY_MS = 30000;
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
