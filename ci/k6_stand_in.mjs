// Runs the code of an exported k6 script under Node, with a stand-in for
// the k6 modules it imports (k6 itself is in no registry this project can
// reach). It is not k6: no executor, no VUs, no metrics engine. It runs
// setup() and then the default function ITERATIONS times in a row, as one
// VU would, so the script's own code — its template functions, CSV reader,
// captures, journey steps and pauses — meets a real server.
//
// Blocking calls as k6 has them (http.request, sleep) are made here with a
// worker thread and Atomics.wait. Pauses are scaled by SLEEP_SCALE.
//
// Usage: node ci/k6_stand_in.mjs SCRIPT.k6.js ITERATIONS
// Environment: what the script reads from __ENV (TARGET_URL, DATA_DIR…),
// SLEEP_SCALE (default 0.01). Prints one JSON line: counters and requests.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Worker } from "node:worker_threads";
import { pathToFileURL } from "node:url";

const [scriptPath, iterationsText] = process.argv.slice(2);
const iterations = Number(iterationsText || "1");
const sleepScale = Number(process.env.SLEEP_SCALE || "0.01");
const scriptDir = path.dirname(path.resolve(scriptPath));

// --- blocking HTTP through a worker --------------------------------------------
const RESULT_BYTES = 4 * 1024 * 1024;
const shared = new SharedArrayBuffer(8 + RESULT_BYTES);
const flag = new Int32Array(shared, 0, 2);
const worker = new Worker(
  `
  const { parentPort, workerData } = require("node:worker_threads");
  const flag = new Int32Array(workerData, 0, 2);
  const bytes = new Uint8Array(workerData, 8);
  parentPort.on("message", async (req) => {
    let result;
    try {
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), 10000);
      const res = await fetch(req.url, { method: req.method, headers: req.headers, body: req.body, redirect: "manual", signal: controller.signal });
      const body = await res.text();
      clearTimeout(timer);
      const headers = {};
      res.headers.forEach((value, name) => { headers[name] = value; });
      result = { status: res.status, headers, body };
    } catch (e) {
      result = { status: 0, headers: {}, body: "", error: String(e) };
    }
    const encoded = new TextEncoder().encode(JSON.stringify(result));
    const length = Math.min(encoded.length, bytes.length);
    bytes.set(encoded.subarray(0, length));
    Atomics.store(flag, 1, length);
    Atomics.store(flag, 0, 1);
    Atomics.notify(flag, 0);
  });
  `,
  { eval: true, workerData: shared },
);

function blockingFetch(request) {
  Atomics.store(flag, 0, 0);
  worker.postMessage(request);
  if (Atomics.wait(flag, 0, 0, 15000) === "timed-out") {
    throw new Error("no answer from the worker in 15 s");
  }
  const length = Atomics.load(flag, 1);
  const text = new TextDecoder().decode(new Uint8Array(shared, 8, length).slice());
  return JSON.parse(text);
}

// --- the stand-ins ---------------------------------------------------------------
const counters = {};
const requests = {};

// k6 canonicalises answer header names: `location` → `Location`.
function canonical(name) {
  return name.replace(/(^|-)([a-z])/g, (_, dash, ch) => dash + ch.toUpperCase());
}

const http = {
  expectedStatuses: (...codes) => ({ codes }),
  request(method, url, body, params = {}) {
    const headers = { ...(params.headers || {}) };
    const answer = blockingFetch({ method, url, headers, body: body === null ? undefined : body });
    const name = (params.tags && params.tags.name) || url;
    const key = `${name} ${answer.status}`;
    requests[key] = (requests[key] || 0) + 1;
    const resHeaders = {};
    for (const [k, v] of Object.entries(answer.headers)) resHeaders[canonical(k)] = v;
    return {
      status: answer.status,
      body: answer.body,
      headers: resHeaders,
      json() {
        return JSON.parse(answer.body);
      },
    };
  },
};

class Counter {
  constructor(name) {
    this.name = name;
  }
  add(n, tags = {}) {
    const key = [this.name, ...Object.values(tags)].join(" ");
    counters[key] = (counters[key] || 0) + n;
  }
}

let iterationInTest = 0;
const modules = {
  "k6/http": { default: http },
  k6: {
    sleep(secs) {
      const ms = Math.max(0, secs * 1000 * sleepScale);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
    },
  },
  "k6/execution": {
    default: {
      scenario: {
        get iterationInTest() {
          return iterationInTest;
        },
      },
      vu: { idInTest: 1 },
    },
  },
  "k6/encoding": { default: { b64encode: (s) => Buffer.from(String(s), "utf8").toString("base64") } },
  "k6/data": {
    SharedArray: class {
      constructor(_name, make) {
        return make();
      }
    },
  },
  "k6/metrics": { Counter },
};

globalThis.__ENV = { ...process.env };
globalThis.open = (file) => fs.readFileSync(path.resolve(scriptDir, file), "utf8");
globalThis.__standIn = modules;

// Each `import … from "k6/…"` becomes a read of the stand-in.
const source = fs.readFileSync(scriptPath, "utf8");
const rewritten = source.replace(/^import (.+) from "(k6[a-z/]*)";$/gm, (_, what, module) => {
  if (!(module in modules)) throw new Error(`no stand-in for ${module}`);
  const from = `globalThis.__standIn[${JSON.stringify(module)}]`;
  if (what.startsWith("{")) return `const ${what} = ${from};`;
  return `const ${what} = ${from}.default;`;
});
const copy = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "k6-stand-in-")), "script.mjs");
fs.writeFileSync(copy, rewritten);
const script = await import(pathToFileURL(copy).href);

const data = typeof script.setup === "function" ? script.setup() : undefined;
for (iterationInTest = 0; iterationInTest < iterations; iterationInTest++) {
  script.default(data);
}
await worker.terminate();
fs.rmSync(path.dirname(copy), { recursive: true, force: true });
console.log(JSON.stringify({ iterations, counters, requests }));
