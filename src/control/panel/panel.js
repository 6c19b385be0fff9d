// trafficgen control panel: talks to the control API of the sidecar that
// serves it (same origin), no framework, no library. Every call is guarded:
// a route this sidecar does not have (404) disables what needs it, and
// nothing here throws on an answer it did not expect.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const TOKEN_KEY = "trafficgen.controlToken";
  const WINDOW_MS = 5 * 60 * 1000;
  // 5 minutes at one point every 500 ms, with room to spare: the charts'
  // whole memory, allocated once.
  const RING_POINTS = 720;
  const MAX_SSE_BUFFER = 1 << 20;
  const NAME_RE = /^[A-Za-z0-9_.:-]{1,64}$/;
  const MAX_NAMES = 64;

  // --- small helpers -------------------------------------------------------

  const isNum = (v) => typeof v === "number" && Number.isFinite(v);
  const obj = (v) => (v && typeof v === "object" ? v : {});
  const setText = (id, text) => {
    const el = $(id);
    const value = text == null ? "" : String(text);
    if (el && el.textContent !== value) el.textContent = value;
  };
  function fmt(v, digits) {
    if (!isNum(v)) return "–";
    const d = digits != null ? digits : Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : 2;
    return Number(v.toFixed(d)).toLocaleString("en-US");
  }
  function duration(secs) {
    if (!isNum(secs)) return "–";
    const s = Math.max(0, Math.floor(secs));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    if (h) return `${h}h ${String(m).padStart(2, "0")}m`;
    if (m) return `${m}m ${String(r).padStart(2, "0")}s`;
    return `${(Math.max(0, secs)).toFixed(secs < 10 ? 1 : 0)}s`;
  }
  const percent = (ratio) => (isNum(ratio) ? `${fmt(ratio * 100, 2)} %` : "–");
  function message(id, text, kind) {
    const el = $(id);
    if (!el) return;
    el.textContent = text || "";
    el.classList.toggle("error", kind === "error");
    el.classList.toggle("warn", kind === "warn");
  }
  // Arrays the API may return bare or wrapped ({"jobs": [...]}).
  function listOf(data, ...keys) {
    if (Array.isArray(data)) return data;
    for (const key of keys) {
      const inner = obj(data)[key];
      if (Array.isArray(inner)) return inner;
    }
    return [];
  }

  // --- HTTP ------------------------------------------------------------------

  function token() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ""; } catch { return ""; }
  }
  function authHeaders(extra) {
    const h = Object.assign({}, extra);
    const t = token();
    if (t) h.Authorization = `Bearer ${t}`;
    return h;
  }

  // One call; resolves to {status, ok, data, error} and never rejects.
  async function api(method, path, body) {
    const init = { method, cache: "no-store", headers: authHeaders(body === undefined ? {} : { "Content-Type": "application/json" }) };
    if (body !== undefined) init.body = JSON.stringify(body);
    let res;
    try {
      res = await fetch(path, init);
    } catch {
      return { status: 0, ok: false, data: null, error: "the sidecar does not answer" };
    }
    let data = null;
    const text = await res.text().catch(() => "");
    if (text) { try { data = JSON.parse(text); } catch { data = null; } }
    const error = res.ok ? null : (typeof obj(data).error === "string" ? data.error : `HTTP ${res.status}`);
    return { status: res.status, ok: res.ok, data, error };
  }

  // A state change: on 401 the token is asked for and the call retried;
  // a token the sidecar rejects is asked for again, saying so (three tries).
  async function change(method, path, body) {
    let r = await api(method, path, body);
    for (let tries = 0; r.status === 401 && tries < 3; tries++) {
      if (!(await askToken(r.error))) break;
      r = await api(method, path, body);
    }
    return r;
  }

  // --- the control token (session storage only) -----------------------------

  let tokenWaiters = [];
  function askToken(reason) {
    const dialog = $("token-dialog");
    setText("token-why", reason
      ? `${reason}. It is kept in this tab's session storage only and sent as a bearer header.`
      : "The token is kept in this tab's session storage only and sent as a bearer header.");
    $("token-input").value = "";
    if (!dialog.open) dialog.showModal();
    $("token-input").focus();
    return new Promise((resolve) => tokenWaiters.push(resolve));
  }
  function closeToken(given) {
    const dialog = $("token-dialog");
    if (dialog.open) dialog.close();
    const waiters = tokenWaiters;
    tokenWaiters = [];
    waiters.forEach((w) => w(given));
    $("token-button").focus();
  }
  function tokenUi() {
    $("token-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const value = $("token-input").value.trim();
      if (!value) return;
      try { sessionStorage.setItem(TOKEN_KEY, value); } catch { /* private mode: kept for this call only */ }
      closeToken(true);
      refreshAll();
    });
    $("token-cancel").addEventListener("click", () => closeToken(false));
    $("token-forget").addEventListener("click", () => {
      try { sessionStorage.removeItem(TOKEN_KEY); } catch { /* nothing kept */ }
      closeToken(false);
    });
    $("token-dialog").addEventListener("cancel", () => closeToken(false));
    $("token-button").addEventListener("click", () => { askToken(""); });
  }

  // --- the charts: one fixed ring, drawn on canvas -----------------------------

  const FIELDS = ["target", "achieved", "replica", "p50", "p95", "p99", "errors", "dropped", "inflight"];
  const ring = {
    t: new Float64Array(RING_POINTS),
    cols: Object.fromEntries(FIELDS.map((f) => [f, new Float64Array(RING_POINTS)])),
    head: 0,
    len: 0,
    push(at, values) {
      const i = this.head;
      this.t[i] = at;
      for (const f of FIELDS) this.cols[f][i] = isNum(values[f]) ? values[f] : NaN;
      this.head = (i + 1) % RING_POINTS;
      if (this.len < RING_POINTS) this.len += 1;
    },
    index(k) { return (this.head - this.len + k + RING_POINTS) % RING_POINTS; },
  };

  const CHARTS = [
    // The whole cluster's target and achieved rate; with replicas, this
    // one's achieved rate too (alone it is the same line, so not drawn).
    { id: "rate", legend: "now-rate", series: [["target", "Target", 1], ["achieved", "Achieved", 3], ["replica", "This replica", 4, "optional"]], unit: "/s" },
    { id: "latency", legend: "now-latency", series: [["p50", "p50", 1], ["p95", "p95", 4], ["p99", "p99", 2]], unit: " ms" },
    { id: "errors", legend: "now-errors", series: [["errors", "Errors", 2]], unit: " %", scale: 100 },
    { id: "load", legend: "now-load", series: [["dropped", "Dropped/s", 2], ["inflight", "In flight", 1]], unit: "" },
  ];
  let colours = {};
  function readColours() {
    const css = getComputedStyle(document.documentElement);
    colours = {};
    for (const name of ["c1", "c2", "c3", "c4", "grid", "muted", "text"]) colours[name] = css.getPropertyValue(`--${name}`).trim() || "#888";
  }

  function legendOf(chart, latest) {
    const el = $(chart.legend);
    if (!el) return;
    if (!el.dataset.built) {
      el.dataset.built = "1";
      for (const [key, label, c, optional] of chart.series) {
        const group = document.createElement("span");
        if (optional) group.dataset.optional = key;
        const sw = document.createElement("span");
        sw.className = `swatch s${c}`;
        sw.setAttribute("aria-hidden", "true");
        const text = document.createElement("span");
        text.dataset.key = key;
        group.append(sw, `${label}: `, text, " ");
        el.append(group);
      }
    }
    for (const span of el.querySelectorAll("span[data-key]")) {
      const v = latest[span.dataset.key];
      const text = isNum(v) ? `${fmt(v * (chart.scale || 1))}${chart.unit}` : "–";
      if (span.textContent !== text) span.textContent = text;
    }
    // A series shown only when it has values (this replica's, with replicas).
    for (const group of el.querySelectorAll("span[data-optional]")) {
      group.hidden = !isNum(latest[group.dataset.optional]);
    }
  }

  // The top of a 4-line grid whose labels are round numbers.
  function gridTop(max) {
    if (!(max > 0)) return 1;
    const step = (max * 1.02) / 4;
    const p = Math.pow(10, Math.floor(Math.log10(step)));
    for (const m of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (step <= m * p) return 4 * m * p;
    return 40 * p;
  }

  function drawChart(chart, now) {
    const canvas = $(`chart-${chart.id}`);
    if (!canvas) return;
    const w = canvas.clientWidth, h = canvas.clientHeight;
    if (!w || !h) return;
    const dpr = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const scale = chart.scale || 1;
    const from = now - WINDOW_MS;
    let max = 0, shown = 0;
    const latest = {};
    for (let k = 0; k < ring.len; k++) {
      const i = ring.index(k);
      if (ring.t[i] < from) continue;
      shown += 1;
      for (const [key] of chart.series) {
        const v = ring.cols[key][i];
        if (v === v) { max = Math.max(max, v * scale); latest[key] = v; }
      }
    }
    const top = gridTop(max);
    const left = 44, right = 8, upper = 8, lower = 18;
    const pw = w - left - right, ph = h - upper - lower;
    ctx.font = "11px system-ui, sans-serif";
    ctx.lineWidth = 1;
    ctx.strokeStyle = colours.grid;
    ctx.fillStyle = colours.muted;
    ctx.textBaseline = "middle";
    ctx.textAlign = "right";
    for (let g = 0; g <= 4; g++) {
      const y = upper + ph - (ph * g) / 4;
      ctx.beginPath(); ctx.moveTo(left, y + 0.5); ctx.lineTo(left + pw, y + 0.5); ctx.stroke();
      ctx.fillText(fmt((top * g) / 4), left - 4, y);
    }
    ctx.textAlign = "center";
    ctx.textBaseline = "alphabetic";
    for (let m = 0; m <= 5; m++) {
      const x = left + (pw * m) / 5;
      ctx.fillText(m === 5 ? "now" : `-${5 - m}m`, Math.min(Math.max(x, left + 10), left + pw - 12), h - 4);
    }
    ctx.lineWidth = 2;
    ctx.lineJoin = "round";
    for (const [key, , c] of chart.series) {
      ctx.strokeStyle = colours[`c${c}`];
      ctx.beginPath();
      let pen = false;
      for (let k = 0; k < ring.len; k++) {
        const i = ring.index(k);
        const t = ring.t[i];
        const v = ring.cols[key][i];
        if (t < from || v !== v) { pen = false; continue; }
        const x = left + ((t - from) / WINDOW_MS) * pw;
        const y = upper + ph - (Math.min(v * scale, top) / top) * ph;
        if (pen) ctx.lineTo(x, y); else ctx.moveTo(x, y);
        pen = true;
      }
      ctx.stroke();
    }
    canvas.dataset.points = String(shown);
    legendOf(chart, latest);
  }

  let drawQueued = false;
  function drawSoon() {
    if (drawQueued) return;
    drawQueued = true;
    requestAnimationFrame(() => {
      drawQueued = false;
      const now = performance.now();
      for (const chart of CHARTS) drawChart(chart, now);
    });
  }

  // A point from any source; dropped arrives as a running total, turned
  // into a rate against the previous total of the same source.
  let lastDropped = null;
  function addPoint(source, values, droppedTotal) {
    const at = performance.now();
    let dropped = NaN;
    if (isNum(droppedTotal)) {
      if (lastDropped && lastDropped.source === source && droppedTotal >= lastDropped.total && at > lastDropped.at) {
        dropped = ((droppedTotal - lastDropped.total) * 1000) / (at - lastDropped.at);
      }
      lastDropped = { source, total: droppedTotal, at };
    }
    values.dropped = dropped;
    ring.push(at, values);
    drawSoon();
  }

  // The last 5 minutes from GET /history, so the charts are not empty on
  // load. Its times are the sidecar's clock: placed relative to its newest
  // point, taken as now, whatever this browser's clock says.
  async function loadHistory() {
    const r = await api("GET", "/history");
    const list = r.ok ? obj(r.data).points : null;
    if (!Array.isArray(list) || list.length === 0) return;
    const points = list.slice(-RING_POINTS).map(obj).filter((p) => isNum(p.t_ms));
    if (points.length === 0) return;
    const newest = points[points.length - 1].t_ms;
    const now = performance.now();
    for (const p of points) {
      ring.push(now - (newest - p.t_ms), pointFromHistory(p));
    }
    lastDropped = null;
    drawSoon();
  }

  function pointFromHistory(p) {
    const many = isNum(replicasNow) && replicasNow > 1;
    return {
      target: isNum(p.cluster_target_rps) ? p.cluster_target_rps : p.target_rps,
      achieved: isNum(p.cluster_achieved_rps) ? p.cluster_achieved_rps : p.achieved_rps,
      replica: many ? p.achieved_rps : NaN,
      p50: p.p50_ms, p95: p.p95_ms, p99: p.p99_ms, errors: p.error_ratio, dropped: p.dropped, inflight: p.in_flight,
    };
  }

  // Percentiles from the scheduled send time, wherever the answer keeps
  // them: {from_scheduled}, {overall: {from_scheduled}}, or one level down
  // under a window's name.
  function percentiles(latency) {
    const l = obj(latency);
    const candidates = [l.overall, l].concat(Object.values(l));
    const holder = candidates.map(obj).find((c) => c.from_scheduled && typeof c.from_scheduled === "object");
    const p = holder ? obj(holder.from_scheduled) : l;
    return { p50: p.p50, p95: p.p95, p99: p.p99 };
  }

  // --- status and header -------------------------------------------------------

  let status = null;
  let lastStatusTotals = null;
  let sidecarStreamLive = false;
  let jobStreamLive = false;
  let eventsAbsent = false;

  function renderHeader() {
    const s = obj(status);
    setText("h-mode", s.mode || "–");
    setText("h-state", typeof s.state === "string" ? s.state.replace(/_/g, " ") : "–");
    renderRates(s);
    setText("h-target", s.target_url || "–");
    setText("h-uptime", duration(s.uptime_secs));
    // Journeys: shown once a workload has any (or instances ran).
    const j = obj(s.journeys);
    const shown = isNum(j.started) && (j.started > 0 || Object.keys(obj(j.by_journey)).length > 0);
    $("h-journeys-box").hidden = !shown;
    if (shown) {
      const early = Object.values(obj(j.ended_early)).filter(isNum).reduce((a, b) => a + b, 0);
      const p50 = obj(j.duration_ms).p50;
      const took = isNum(p50) ? `, p50 ${fmt(p50 / 1000)} s` : "";
      setText("h-journeys", `${fmt(j.active)} / ${fmt(j.completed)} / ${fmt(early)}${took}`);
    }
    renderSetup(s);
    for (const b of document.querySelectorAll("button[data-mode]")) {
      b.setAttribute("aria-pressed", String(b.dataset.mode === s.mode));
    }
    // The custom rate in force, in its field, unless someone is typing one.
    const custom = $("custom-rps");
    if (s.mode === "custom" && isNum(s.rps) && custom.value === "" && document.activeElement !== custom) {
      custom.value = String(s.rps);
    }
    if (isNum(s.max_rps)) {
      $("job-rate").max = String(s.max_rps);
      $("custom-rps").max = String(s.max_rps);
      setText("job-cap", `cap ${fmt(s.max_rps)} req/s (MAX_RPS)`);
    }
    const job = obj(s.job);
    if (typeof job.job_id === "string" && job.status !== "completed" && job.status !== "stopped" && !currentJob) {
      adoptJob(job);
    }
  }

  // --- rates, replicas and requests -------------------------------------------

  // Replicas the rate is split between, as /status last said (1 alone).
  let replicasNow = 1;

  // The header's rates: the whole cluster's achieved rate against what the
  // schedule asks now (a job's maximum only where labelled as such), and
  // with replicas, this one's part.
  function renderRates(s) {
    const target = isNum(s.cluster_target_rps) ? s.cluster_target_rps : s.rps;
    const achieved = isNum(s.cluster_achieved_rps) ? s.cluster_achieved_rps : s.achieved_rps;
    setText("h-rate", `${fmt(achieved)} / ${fmt(target)} req/s`);
    const job = obj(s.job);
    const ramping = isNum(s.rps) && isNum(target) && Math.abs(s.rps - target) > 0.005 && s.state === "running";
    $("h-max-box").hidden = !ramping;
    if (ramping) {
      setText("h-max-label", typeof job.job_id === "string" ? "Job's maximum" : "Ramp ends at");
      setText("h-max", `${fmt(s.rps)} req/s`);
    }
    replicasNow = isNum(s.replicas) ? s.replicas : 1;
    const many = replicasNow > 1;
    $("h-replica-box").hidden = !many;
    $("h-replicas-box").hidden = !s.cluster;
    if (many) setText("h-replica", `${fmt(s.achieved_rps)} / ${fmt(s.target_rps)} req/s`);
    if (s.cluster) renderCluster(obj(s.cluster));
    else $("cluster-card").hidden = true;
  }

  function renderCluster(c) {
    const list = Array.isArray(c.replicas) ? c.replicas.slice(0, MAX_NAMES).map(obj) : [];
    const states = {};
    for (const r of list) {
      const state = !r.reachable ? "not answering" : typeof r.state === "string" ? r.state.replace(/_/g, " ") : "unknown";
      states[state] = (states[state] || 0) + 1;
    }
    const said = Object.entries(states).map(([k, n]) => `${n} ${k}`).join(", ");
    setText("h-replicas", `${fmt(c.members, 0)} sending${said ? ` (${said})` : ""}`);
    $("cluster-card").hidden = false;
    const share = obj(c.share);
    setText("cluster-note", `This replica sends share ${fmt(share.index, 0)} of ${fmt(share.count, 0)}; `
      + `the cluster is asked ${fmt(c.target_rps)} req/s now and sent ${fmt(c.achieved_rps)} req/s over the last 10 s.`);
    const rows = list.map((r) => {
      const sh = obj(r.share);
      const name = `${r.address || "?"}${r.self ? " (this one)" : ""}`;
      const state = !r.reachable ? "not answering" : typeof r.state === "string" ? r.state.replace(/_/g, " ") : "–";
      const seen = isNum(r.last_seen_secs_ago) ? `${fmt(r.last_seen_secs_ago)} s ago` : "never";
      return [name, state, r.mode || "–", isNum(sh.count) ? `${fmt(sh.index, 0)} of ${fmt(sh.count, 0)}` : "–",
        fmt(r.target_rps), fmt(r.achieved_rps), r.self ? "now" : seen];
    });
    fillRows("cluster-body", rows);
  }

  // Replaces a table body's rows with `rows` (arrays of text): text only,
  // never markup, as names come from the workload.
  function fillRows(bodyId, rows) {
    const body = $(bodyId);
    if (!body) return;
    while (body.rows.length > rows.length) body.deleteRow(-1);
    rows.forEach((cells, i) => {
      const tr = body.rows[i] || body.insertRow();
      while (tr.cells.length > cells.length) tr.deleteCell(-1);
      cells.forEach((text, j) => {
        let cell = tr.cells[j];
        if (!cell) {
          cell = document.createElement(j === 0 ? "th" : "td");
          if (j === 0) cell.scope = "row";
          tr.appendChild(cell);
        }
        if (cell.textContent !== text) cell.textContent = text;
      });
    });
  }

  const FAILURE_NAMES = {
    http_4xx: "4xx", http_5xx: "5xx", http_other: "other status", timeout: "timeout", connect: "connect",
    dns: "dns", tls: "tls", reused: "reused connection", other: "other",
  };

  function renderRequests(s) {
    const table = obj(s.requests);
    const byName = obj(table.by_name);
    const names = Object.keys(byName).slice(0, MAX_NAMES);
    let ok = 0, failed = 0;
    const rows = names.map((name) => {
      const r = obj(byName[name]);
      if (isNum(r.successful)) ok += r.successful;
      if (isNum(r.failed)) failed += r.failed;
      const kinds = Object.entries(obj(r.failures)).filter(([, n]) => isNum(n) && n > 0)
        .map(([k, n]) => `${FAILURE_NAMES[k] || k} ${fmt(n, 0)}`).join(", ");
      const l = obj(r.latency_ms);
      const share = isNum(r.share) ? `${fmt(r.share * 100)} %` : "–";
      return [name, fmt(r.rps), share, fmt(r.successful, 0), fmt(r.failed, 0), kinds || "–", fmt(l.p50), fmt(l.p95), fmt(l.p99)];
    });
    fillRows("requests-body", rows);
    setText("requests-total", fmt(table.total_rps));
    setText("requests-ok", fmt(ok, 0));
    setText("requests-failed", fmt(failed, 0));
    const window = isNum(table.window_secs) && table.window_secs > 0 ? `over the last ${fmt(table.window_secs)} s` : "once answers come";
    const many = isNum(s.replicas) && s.replicas > 1 ? " This replica's requests only." : "";
    setText("requests-note", `Answers per second ${window} (at least 10 answers seen, up to 10 s); counts since start; latency over the last 10 s from the scheduled send.${many}`);
    renderJourneys(obj(obj(s.journeys).by_journey));
  }

  function renderJourneys(byJourney) {
    const names = Object.keys(byJourney).slice(0, MAX_NAMES);
    $("journeys-box").hidden = names.length === 0;
    const secs = (ms) => (isNum(ms) ? fmt(ms / 1000) : "–");
    fillRows("journeys-body", names.map((name) => {
      const j = obj(byJourney[name]);
      const sum = (m) => Object.values(obj(m)).filter(isNum).reduce((a, b) => a + b, 0);
      const d = obj(j.duration_ms);
      return [name, fmt(j.started, 0), fmt(j.completed, 0), fmt(sum(j.ended_early), 0), fmt(sum(j.dropped), 0), secs(d.p50), secs(d.p95), secs(d.p99)];
    }));
  }

  // The workload's setup (its login), once it has one; a failing one is
  // said in words: why, how often tried, when next, and what is not sent.
  function renderSetup(s) {
    const setup = obj(s.setup);
    const state = typeof setup.state === "string" ? setup.state : "none";
    $("h-setup-box").hidden = state === "none";
    const relogins = isNum(setup.relogins) && setup.relogins > 0 ? `, ${fmt(setup.relogins)} logins again after a 401` : "";
    setText("h-setup", `${state}${relogins}`);
    const failing = state === "failing";
    $("setup-alert").hidden = !failing;
    if (!failing) { setText("setup-alert", ""); return; }
    const tries = isNum(setup.attempts) ? `${fmt(setup.attempts)} failed ${setup.attempts === 1 ? "try" : "tries"}` : "failing";
    const next = isNum(setup.next_try_in_secs) ? `; next try in ${fmt(setup.next_try_in_secs)} s` : "";
    const unmet = isNum(obj(s.stats).unmet) ? `; ${fmt(s.stats.unmet)} requests not sent so far (a value they need is missing)` : "";
    const why = typeof setup.last_error === "string" ? setup.last_error : "no reason given";
    // Text, never markup: the reason may quote the target.
    setText("setup-alert", `Setup (login) failing, ${tries}: ${why}${next}${unmet}.`);
  }

  // Without a live stream, /status itself feeds the charts.
  function pointFromStatus(s) {
    const stats = obj(s.stats);
    const now = performance.now();
    let errors = NaN;
    if (lastStatusTotals && isNum(stats.successful) && isNum(stats.failed)) {
      const ok = stats.successful - lastStatusTotals.successful;
      const failed = stats.failed - lastStatusTotals.failed;
      if (ok >= 0 && failed >= 0) errors = ok + failed > 0 ? failed / (ok + failed) : 0;
    }
    lastStatusTotals = { successful: stats.successful, failed: stats.failed, at: now };
    const p = percentiles(s.latency_ms || s.latency);
    const many = isNum(s.replicas) && s.replicas > 1;
    addPoint("status", {
      target: isNum(s.cluster_target_rps) ? s.cluster_target_rps : s.rps,
      achieved: isNum(s.cluster_achieved_rps) ? s.cluster_achieved_rps : s.achieved_rps,
      replica: many ? s.achieved_rps : NaN,
      p50: p.p50, p95: p.p95, p99: p.p99, errors, inflight: s.in_flight,
    }, stats.dropped);
  }

  async function pollStatus() {
    const r = await api("GET", "/status");
    if (!r.ok || !r.data) {
      message("conn", r.status === 0 ? "The sidecar does not answer; retrying." : `GET /status: ${r.error}`);
      return;
    }
    message("conn", "");
    status = r.data;
    renderHeader();
    renderRequests(obj(status));
    if (!sidecarStreamLive) {
      pointFromStatus(status);
      setText("chart-source", eventsAbsent
        ? "Points from GET /status every second (no event stream on this sidecar)."
        : "Points from GET /status every second until the event stream is open.");
    }
    if (!namesLoaded) loadNames();
  }

  function statusLoop() {
    // Every fetch leaves a resource-timing entry (up to 250 kept): a page
    // open for hours must not hold them.
    if (performance.clearResourceTimings) performance.clearResourceTimings();
    pollStatus().finally(() => setTimeout(statusLoop, sidecarStreamLive || jobStreamLive ? 2000 : 1000));
  }

  // --- Server-Sent Events over fetch (so the bearer header can go along) ----

  // Reads `path` as an event stream, calling onEvent(name, data) per event.
  // Resolves with the HTTP status (200 when the stream ended) and never rejects.
  async function readEvents(path, onEvent, signal) {
    let res;
    try {
      res = await fetch(path, { headers: authHeaders({ Accept: "text/event-stream" }), cache: "no-store", signal });
    } catch {
      return 0;
    }
    if (!res.ok || !res.body) {
      res.body && res.body.cancel().catch(() => {});
      return res.status;
    }
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const frame = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let name = "message";
          const data = [];
          for (const line of frame.split("\n")) {
            if (line.startsWith("event:")) name = line.slice(6).trim();
            else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
          }
          if (!data.length) continue;
          let parsed = null;
          try { parsed = JSON.parse(data.join("\n")); } catch { parsed = null; }
          try { onEvent(name, parsed); } catch (e) { console.warn("event", name, e); }
        }
        // A frame without its end this long is not an event stream.
        if (buffer.length > MAX_SSE_BUFFER) { reader.cancel().catch(() => {}); break; }
      }
    } catch {
      // Aborted or the connection broke: the caller reconnects.
    }
    return 200;
  }

  // A browser holds at most 6 connections to a host: while a job runs,
  // its stream alone is open, so a few tabs cannot starve each other.
  let sidecarAbort = null;
  async function sidecarEvents() {
    for (let backoff = 1000; ;) {
      sidecarAbort = new AbortController();
      const code = await readEvents("/events", (name, data) => {
        sidecarStreamLive = true;
        onSidecarEvent(name, obj(data));
      }, sidecarAbort.signal);
      sidecarAbort = null;
      sidecarStreamLive = false;
      if (code === 404) {
        eventsAbsent = true;
        return;
      }
      if (code === 200) backoff = 1000;
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(backoff * 2, 15000);
    }
  }

  function onSidecarEvent(name, d) {
    if (name === "stats") {
      // One source for the charts, jobs or not (a switch of source made
      // the rate jump when a job began): the scheduled target, and the
      // achieved rate over a window that fits it.
      const many = isNum(d.replicas) && d.replicas > 1;
      const smoothing = isNum(d.achieved_window_secs) && d.achieved_window_secs > 1.05
        ? ` Achieved over the last ${fmt(d.achieved_window_secs)} s (at least 10 requests).` : "";
      setText("chart-source", `Live from GET /events, a point a second; the first 5 minutes from GET /history.${many ? " The whole cluster, and this replica." : ""}${smoothing}`);
      // The target in the header follows every second, not only each /status.
      if (status) {
        for (const key of ["target_rps", "cluster_target_rps", "replicas"]) {
          if (isNum(d[key])) status[key] = d[key];
        }
        renderRates(status);
      }
      const p = percentiles(d.latency_ms);
      const req = obj(d.requests);
      addPoint("events", {
        target: isNum(d.cluster_target_rps) ? d.cluster_target_rps : d.target_rps,
        achieved: isNum(d.cluster_achieved_rps) ? d.cluster_achieved_rps : d.achieved_rps,
        replica: many ? d.achieved_rps : NaN,
        p50: p.p50, p95: p.p95, p99: p.p99, errors: d.error_ratio, inflight: d.in_flight,
      }, req.dropped);
    } else if (name === "mode") {
      if (status && typeof d.mode === "string") {
        status.mode = d.mode;
        if (isNum(d.rps)) status.rps = d.rps;
        renderHeader();
      }
    } else if (name === "job_started") {
      if (typeof d.job_id === "string" && !currentJob) adoptJob({ job_id: d.job_id, scenario: d.scenario, status: "running" });
    } else if (name === "job_ended") {
      loadJobs();
    } else if (name === "shutdown") {
      message("conn", "The sidecar is shutting down.");
    }
  }

  // --- modes ---------------------------------------------------------------------

  let modeCap = null;
  async function loadModes() {
    const r = await api("GET", "/modes");
    if (!r.ok) return;
    const modes = obj(obj(r.data).modes);
    for (const el of document.querySelectorAll("small[data-rate]")) {
      const v = modes[el.dataset.rate];
      el.textContent = isNum(v) ? `${fmt(v)}/s` : "";
    }
    const cap = obj(obj(r.data).custom).max_rps;
    if (isNum(cap)) modeCap = cap;
  }

  async function switchMode(mode, body, button) {
    busy(button, true);
    const r = await change("POST", `/mode/${mode}`, body);
    busy(button, false);
    if (!r.ok) {
      let text = `${mode}: ${r.error}`;
      if (body && isNum(body.ramp_secs) && r.status === 422 && /ramp_secs|unknown field/.test(r.error || "")) {
        text = `This sidecar cannot ramp yet (${r.error}). Set the ramp to 0 to switch at once.`;
      }
      message("mode-msg", text, "error");
      return;
    }
    const d = obj(r.data);
    let text = d.model === "closed" && isNum(d.users)
      ? `Now ${fmt(d.users)} virtual users, pausing ${d.pause || "USER_PAUSE"}`
      : `Now ${d.mode || mode}${isNum(d.rps) ? ` at ${fmt(d.rps)} req/s` : ""}`;
    const ramp = obj(d.ramp);
    if (isNum(ramp.secs) && ramp.secs > 0) text += `, ramping from ${fmt(ramp.from_rps)} req/s over ${fmt(ramp.secs)} s`;
    if (typeof d.stopped_job === "string" || typeof obj(d.stopped_job).job_id === "string") text += "; the running job was stopped";
    message("mode-msg", `${text}.`);
    if (status) { status.mode = d.mode || mode; if (isNum(d.rps)) status.rps = d.rps; renderHeader(); }
    pollStatus();
  }

  function modesUi() {
    for (const b of document.querySelectorAll(".modes button[data-mode]")) {
      b.addEventListener("click", () => switchMode(b.dataset.mode, undefined, b));
    }
    $("custom-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const rps = Number($("custom-rps").value);
      const ramp = Number($("custom-ramp").value || 0);
      const cap = isNum(obj(status).max_rps) ? status.max_rps : modeCap;
      if ($("custom-rps").value === "" || !isNum(rps) || rps < 0 || (isNum(cap) && rps > cap)) {
        message("mode-msg", `Custom rate: a number from 0 to ${isNum(cap) ? fmt(cap) : "MAX_RPS"}.`, "error");
        $("custom-rps").focus();
        return;
      }
      if (!isNum(ramp) || ramp < 0) {
        message("mode-msg", "Ramp: 0 or more seconds.", "error");
        $("custom-ramp").focus();
        return;
      }
      const body = { rps };
      if (ramp > 0) body.ramp_secs = ramp;
      switchMode("custom", body, $("custom-apply"));
    });
    $("users-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const users = Number($("users-n").value);
      const max = obj(obj(status).users).max_users;
      if ($("users-n").value === "" || !Number.isInteger(users) || users < 0 || (isNum(max) && users > max)) {
        message("mode-msg", `Users: a whole number from 0 to ${isNum(max) ? fmt(max) : "MAX_USERS"}.`, "error");
        $("users-n").focus();
        return;
      }
      switchMode("users", { users }, $("users-apply"));
    });
  }

  function busy(button, on, label) {
    if (!button) return;
    if (on) {
      button.dataset.label = button.textContent;
      button.setAttribute("aria-busy", "true");
      button.disabled = true;
      if (label) button.textContent = label;
    } else {
      button.removeAttribute("aria-busy");
      button.disabled = false;
      if (label && button.dataset.label) button.textContent = button.dataset.label;
    }
  }

  // --- endpoints (the workload's request names) --------------------------------

  let namesLoaded = false;
  function namesFrom(data) {
    const d = obj(data);
    const raw = listOf(d.requests, "requests").concat(listOf(d.names, "names"));
    // Jobs choose among the weighted requests only (not setup or error ones).
    const weighted = raw.filter((r) => typeof r === "string" || obj(r).role === undefined || obj(r).role === "weighted");
    return weighted.map((r) => (typeof r === "string" ? r : obj(r).name)).filter((n) => typeof n === "string");
  }
  async function loadNames() {
    if (namesLoaded || !status) return;
    namesLoaded = true;
    let names = [];
    const r = await api("GET", "/workload");
    if (r.ok) names = namesFrom(r.data);
    if (!names.length && typeof status.mix === "string") {
      names = status.mix.split(",").map((part) => part.split("=")[0].trim());
    }
    if (!names.length) names = Object.keys(obj(obj(status.stats).by_endpoint));
    names = [...new Set(names.filter((n) => NAME_RE.test(n)))].slice(0, MAX_NAMES);
    const list = $("ep-list");
    list.textContent = "";
    for (const name of names) {
      const label = document.createElement("label");
      const box = document.createElement("input");
      box.type = "checkbox";
      box.value = name;
      box.className = "ep";
      box.disabled = $("ep-all").checked;
      label.append(box, ` ${name}`);
      list.append(label);
    }
  }

  // --- jobs --------------------------------------------------------------------

  let jobsAvailable = null;
  let currentJob = null;
  let jobAbort = null;
  let jobBusy = false;

  function setJobsAvailable(yes) {
    jobsAvailable = yes;
    $("job-unavailable").hidden = yes;
    if (!yes) setText("jobs-msg", "jobs API not available on this sidecar.");
    updateJobButtons();
  }

  function updateJobButtons() {
    const consent = $("job-consent").checked;
    const canStart = consent && jobsAvailable !== false && !currentJob && !jobBusy;
    $("job-start").disabled = !canStart;
    $("job-stop").disabled = !currentJob || jobBusy;
    for (const b of document.querySelectorAll("#presets button")) b.disabled = !canStart;
  }

  function jobBody() {
    const scenario = obj(document.querySelector("input[name=scenario]:checked")).value || "normal";
    const body = {
      scenario,
      duration_secs: Number($("job-duration").value),
      max_rps: Number($("job-rate").value),
      ramp_up_secs: Number($("job-ramp").value || 0),
    };
    if (!$("ep-all").checked) body.endpoints = [...document.querySelectorAll("input.ep:checked")].map((b) => b.value);
    return body;
  }

  function checkJobBody(body) {
    const cap = obj(status).max_rps;
    if (!isNum(body.duration_secs) || body.duration_secs < 1 || body.duration_secs > 86400) return "Duration: 1 to 86400 seconds.";
    if (!isNum(body.max_rps) || body.max_rps < 0) return "Max rate: a number of requests per second.";
    if (isNum(cap) && body.max_rps > cap) return `Max rate: at most ${fmt(cap)} req/s (MAX_RPS).`;
    if (!isNum(body.ramp_up_secs) || body.ramp_up_secs < 0) return "Ramp-up: 0 or more seconds.";
    if (body.endpoints && !body.endpoints.length) return "Endpoints: pick at least one, or All.";
    return null;
  }

  async function startJob(body, button) {
    if (jobBusy || currentJob) return;
    jobBusy = true;
    updateJobButtons();
    busy(button, true, "Starting…");
    message("job-msg", "Starting…");
    const r = await change("POST", "/jobs", body);
    busy(button, false, "Starting…");
    jobBusy = false;
    if (r.status === 404 || r.status === 405) {
      setJobsAvailable(false);
      message("job-msg", "");
    } else if (r.status === 409) {
      message("job-msg", r.error, "warn");
      const running = obj(r.data).running_job_id || obj(r.data).job_id;
      if (typeof running === "string") adoptJob({ job_id: running, status: "running" });
      else loadJobs();
    } else if (!r.ok) {
      message("job-msg", r.error, "error");
    } else {
      message("job-msg", `Started ${obj(r.data).job_id || "a job"}.`);
      adoptJob(obj(r.data));
    }
    updateJobButtons();
  }

  async function stopJob() {
    if (!currentJob) return;
    const id = currentJob.job_id;
    jobBusy = true;
    busy($("job-stop"), true, "Stopping…");
    updateJobButtons();
    const r = await change("POST", `/jobs/${encodeURIComponent(id)}/stop`);
    busy($("job-stop"), false, "Stopping…");
    jobBusy = false;
    if (!r.ok) {
      message("job-msg", r.error, "error");
    } else if (currentJob && currentJob.job_id === id) {
      // The answer may be the record without its summary yet: ask for it.
      let record = obj(r.data);
      if (!record.summary) {
        const again = await api("GET", `/jobs/${encodeURIComponent(id)}`);
        if (again.ok && obj(again.data).job_id) record = again.data;
      }
      if (currentJob && currentJob.job_id === id) finishJob(Object.assign({}, currentJob, record, { job_id: id }));
    }
    updateJobButtons();
  }

  function adoptJob(record) {
    if (typeof record.job_id !== "string" || !NAME_RE.test(record.job_id)) return;
    if (currentJob && currentJob.job_id === record.job_id) return;
    currentJob = record;
    $("job-live").hidden = false;
    $("job-summary").hidden = true;
    setText("job-title", `${record.scenario || "job"} (${record.job_id})`);
    updateJobButtons();
    followJob(record.job_id);
  }

  async function followJob(id) {
    if (jobAbort) jobAbort.abort();
    const abort = new AbortController();
    jobAbort = abort;
    const path = `/jobs/${encodeURIComponent(id)}/events`;
    for (let tries = 0; currentJob && currentJob.job_id === id && !abort.signal.aborted; tries++) {
      await readEvents(path, (name, data) => onJobEvent(id, name, obj(data)), abort.signal);
      jobStreamLive = false;
      if (abort.signal.aborted || !currentJob || currentJob.job_id !== id) return;
      // The stream ended without a summary, or never opened: ask the job itself.
      const r = await api("GET", `/jobs/${encodeURIComponent(id)}`);
      if (r.ok && obj(r.data).status && r.data.status !== "running") { finishJob(r.data); return; }
      if (r.status === 404) { finishJob({ job_id: id }); return; }
      await new Promise((res) => setTimeout(res, Math.min(1000 * (tries + 1), 5000)));
    }
  }

  function onJobEvent(id, name, d) {
    if (!currentJob || currentJob.job_id !== id) return;
    if (name === "progress") {
      jobStreamLive = true;
      const req = obj(d.requests);
      if (typeof d.scenario === "string" && !currentJob.scenario) {
        currentJob.scenario = d.scenario;
        setText("job-title", `${d.scenario} (${id})`);
      }
      setText("j-elapsed", `${duration(d.elapsed_secs)} of ${duration(d.duration_secs)}`);
      if (isNum(d.elapsed_secs) && d.duration_secs > 0) $("job-progress").value = Math.min(1, d.elapsed_secs / d.duration_secs);
      setText("j-sent", fmt(req.sent, 0));
      setText("j-ok", fmt(req.successful, 0));
      setText("j-failed", fmt(req.failed, 0));
      setText("j-dropped", fmt(req.dropped, 0));
      setText("j-rate", `${fmt(d.achieved_rps)} / ${fmt(d.target_rps)} req/s`);
    } else if (name === "summary") {
      finishJob(d);
    }
  }

  // Shows how a job ended: `d` is its record (with `summary`) or the summary.
  function finishJob(d) {
    const record = d.job_id ? d : Object.assign({}, currentJob || {}, { summary: d });
    if (jobAbort) { jobAbort.abort(); jobAbort = null; }
    jobStreamLive = false;
    currentJob = null;
    $("job-live").hidden = true;
    showSummary(record);
    message("job-msg", `Job ${record.job_id || ""} ${record.status || "ended"}${record.stop_reason ? ` (${String(record.stop_reason).replace(/_/g, " ")})` : ""}.`);
    updateJobButtons();
    loadJobs();
  }

  function showSummary(record) {
    const s = obj(record.summary && typeof record.summary === "object" ? record.summary : record);
    const req = obj(s.requests);
    const lat = obj(s.latency_ms);
    const sched = obj(lat.from_scheduled), sent = obj(lat.from_sent);
    const rows = [
      ["Scenario", record.scenario || "–"],
      ["Status", record.status ? `${record.status}${record.stop_reason ? ` (${record.stop_reason})` : ""}` : "–"],
      ["Duration", duration(s.elapsed_secs)],
      ["Sent", fmt(req.sent, 0)],
      ["Successful", fmt(req.successful, 0)],
      ["Failed", fmt(req.failed, 0)],
      ["Dropped", fmt(req.dropped, 0)],
      ["Rate achieved / target", `${fmt(s.achieved_rps)} / ${fmt(s.target_rps)} req/s`],
      ["Error ratio", percent(s.error_ratio)],
      ["Latency from scheduled send p50/p95/p99", `${fmt(sched.p50)} / ${fmt(sched.p95)} / ${fmt(sched.p99)} ms`],
      ["Latency from actual send p50/p95/p99", `${fmt(sent.p50)} / ${fmt(sent.p95)} / ${fmt(sent.p99)} ms`],
    ];
    const list = $("s-list");
    list.textContent = "";
    for (const [k, v] of rows) {
      const div = document.createElement("div");
      const dt = document.createElement("dt");
      const dd = document.createElement("dd");
      dt.textContent = k;
      dd.textContent = v;
      div.append(dt, dd);
      list.append(div);
    }
    setText("s-title", `${record.scenario || "job"}${record.job_id ? ` (${record.job_id})` : ""}`);
    $("job-summary").hidden = false;
  }

  async function loadJobs() {
    const r = await api("GET", "/jobs");
    if (r.status === 404) { setJobsAvailable(false); return; }
    if (!r.ok) { setText("jobs-msg", `GET /jobs: ${r.error}`); return; }
    setJobsAvailable(true);
    const jobs = listOf(r.data, "jobs").slice(0, 50).map(obj);
    const body = $("jobs-body");
    const rows = jobs.map((j) => {
      const s = obj(j.summary);
      const p95 = obj(obj(s.latency_ms).from_scheduled).p95;
      return [
        typeof j.started_at === "string" ? j.started_at.replace("T", " ").replace(/\.\d+/, "") : "–",
        j.scenario || j.preset || "–",
        `${j.status || "–"}${j.stop_reason ? ` (${String(j.stop_reason).replace(/_/g, " ")})` : ""}`,
        fmt(obj(s.requests).sent, 0),
        `${fmt(s.achieved_rps)} / ${fmt(s.target_rps)}`,
        percent(s.error_ratio),
        fmt(p95),
      ];
    });
    const key = JSON.stringify(rows);
    if (body.dataset.key !== key) {
      body.dataset.key = key;
      body.textContent = "";
      for (const row of rows) {
        const tr = document.createElement("tr");
        for (const cell of row) {
          const td = document.createElement("td");
          td.textContent = cell;
          tr.append(td);
        }
        body.append(tr);
      }
    }
    setText("jobs-msg", jobs.length ? "" : "No jobs yet.");
    const running = jobs.find((j) => j.status === "running");
    if (running && !currentJob) adoptJob(running);
  }

  async function loadPresets() {
    const r = await api("GET", "/presets");
    if (!r.ok) return;
    const holder = $("presets");
    holder.textContent = "";
    for (const p of listOf(r.data, "presets").map(obj)) {
      if (typeof p.name !== "string" || !NAME_RE.test(p.name)) continue;
      const b = document.createElement("button");
      b.type = "button";
      b.dataset.preset = p.name;
      b.textContent = `${p.name}: ${p.scenario || ""} ${fmt(p.max_rps)}/s for ${duration(p.duration_secs)}`;
      b.addEventListener("click", () => startJob({ preset: p.name }, b));
      holder.append(b);
    }
    $("presets-box").hidden = !holder.childElementCount;
    updateJobButtons();
  }

  function jobsUi() {
    $("job-consent").addEventListener("change", updateJobButtons);
    $("ep-all").addEventListener("change", () => {
      for (const b of document.querySelectorAll("input.ep")) b.disabled = $("ep-all").checked;
    });
    $("job-form").addEventListener("submit", (e) => {
      e.preventDefault();
      if ($("job-start").disabled) return;
      const body = jobBody();
      const problem = checkJobBody(body);
      if (problem) { message("job-msg", problem, "error"); return; }
      startJob(body, $("job-start"));
    });
    $("job-stop").addEventListener("click", stopJob);
  }

  // --- logs --------------------------------------------------------------------

  let logsAvailable = true;
  function logLine(entry) {
    if (typeof entry === "string") return entry.slice(0, 600);
    const e = obj(entry);
    const rest = Object.entries(e)
      .filter(([k]) => !["timestamp", "level", "message", "service"].includes(k))
      .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
      .join(" ");
    return `${e.timestamp || ""} ${e.level || ""} ${e.message || ""} ${rest}`.trim().slice(0, 600);
  }
  async function loadLogs() {
    if (!logsAvailable) return;
    const r = await api("GET", "/logs?limit=50");
    if (r.status === 404) {
      logsAvailable = false;
      setText("logs-msg", "The log view is not available on this sidecar.");
      return;
    }
    if (!r.ok) { setText("logs-msg", `GET /logs: ${r.error}`); return; }
    setText("logs-msg", "");
    const entries = listOf(r.data, "lines", "logs", "entries", "records").slice(-100).map(logLine);
    const pre = $("logs");
    const text = entries.join("\n");
    if (pre.textContent !== text) {
      const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.textContent = text;
      if (atEnd) pre.scrollTop = pre.scrollHeight;
    }
    if (!entries.length) setText("logs-msg", "No log lines yet.");
  }

  // --- start -------------------------------------------------------------------

  function refreshAll() {
    pollStatus();
    loadModes();
    loadJobs();
    loadLogs();
  }

  function start() {
    readColours();
    const scheme = window.matchMedia("(prefers-color-scheme: dark)");
    if (scheme.addEventListener) scheme.addEventListener("change", () => { readColours(); drawSoon(); });
    window.addEventListener("resize", drawSoon);
    tokenUi();
    modesUi();
    jobsUi();
    // The history first, so the live points come after it in the ring.
    loadHistory().finally(() => {
      statusLoop();
      sidecarEvents();
    });
    loadModes();
    loadJobs().then(() => { if (jobsAvailable) loadPresets(); });
    loadLogs();
    setInterval(() => { if (jobsAvailable) loadJobs(); }, 10000);
    setInterval(loadLogs, 5000);
    // The time axis moves even when no point comes.
    setInterval(drawSoon, 5000);
    updateJobButtons();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
