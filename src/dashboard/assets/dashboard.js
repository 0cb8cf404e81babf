// shoal's dashboard: reads the admin API of the listener that served it.
// Live data comes over Server-Sent Events read with fetch(), so the admin
// token (when `admin.read: token` asks for it) goes in a header.
"use strict";

const KEEP = 600;               // samples charted: the server keeps ten minutes
const TROUBLE = new Set(["unhealthy", "ejected", "exited", "crash_loop", "config_reload_failed"]);
const state = { samples: [], status: null, apps: new Map() };
let token = sessionStorage.getItem("shoal-token") || "";

const $ = (sel, root = document) => root.querySelector(sel);

function headers(extra = {}) {
  const h = { ...extra };
  if (token) h["Authorization"] = "Bearer " + token;
  return h;
}

function showAlert(text, ok = false) {
  const a = $("#alert");
  a.textContent = text;
  a.className = ok ? "alert ok" : "alert";
  a.hidden = !text;
}

function unauthorized(what) {
  showAlert(`401 Unauthorized: ${what} needs the admin token (admin.token in shoal's config). ` +
            (token ? "The token given was refused." : "Type it in the field at the top right."));
}

// Follow an SSE stream: calls onData with each message's parsed JSON and
// reconnects after a pause if it ends.
async function follow(path, onData, onOpen) {
  for (;;) {
    let live = false;
    try {
      const resp = await fetch(path, { headers: headers({ Accept: "text/event-stream" }), cache: "no-store" });
      if (resp.status === 401) { unauthorized("reading"); setLive(false); await sleep(3000); continue; }
      if (!resp.ok) throw new Error(resp.status);
      live = true;
      if (onOpen) onOpen();
      setLive(true);
      const reader = resp.body.getReader();
      const decoder = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        let end;
        while ((end = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, end);
          buf = buf.slice(end + 2);
          const data = block.split("\n").filter(l => l.startsWith("data: ")).map(l => l.slice(6)).join("\n");
          if (data) { try { onData(JSON.parse(data)); } catch (e) { console.warn(e); } }
        }
      }
    } catch (e) {
      console.warn(path, e);
    }
    if (live) setLive(false);
    await sleep(1000);
  }
}

const sleep = ms => new Promise(r => setTimeout(r, ms));

function setLive(on) {
  const l = $("#live");
  l.textContent = on ? "live" : "offline";
  l.className = "pill " + (on ? "on" : "off");
}

// ---- charts ---------------------------------------------------------------

function drawChart(canvas, series, opts = {}) {
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, padL = 44, padB = 16, padT = 6;
  ctx.clearRect(0, 0, W, H);
  ctx.font = "11px system-ui, sans-serif";
  let max = opts.min || 0;
  for (const s of series) for (const v of s.values) if (v != null && v > max) max = v;
  max = niceMax(max || 1);
  ctx.strokeStyle = "#26313d"; ctx.fillStyle = "#8795a4"; ctx.lineWidth = 1;
  for (let i = 0; i <= 3; i++) {
    const y = padT + (H - padT - padB) * (i / 3);
    ctx.beginPath(); ctx.moveTo(padL, y); ctx.lineTo(W, y); ctx.stroke();
    const v = max * (1 - i / 3);
    ctx.fillText(opts.format ? opts.format(v) : fmt(v), 2, y + 4);
  }
  const n = Math.max(...series.map(s => s.values.length), 2);
  const span = Math.max(n, 60);
  ctx.fillText(`last ${Math.round(span / 60 * 10) / 10} min`, padL, H - 3);
  for (const s of series) {
    ctx.strokeStyle = s.color; ctx.lineWidth = 2; ctx.beginPath();
    let pen = false;
    s.values.forEach((v, i) => {
      if (v == null) { pen = false; return; }
      const x = padL + (W - padL) * ((span - s.values.length + i) / (span - 1));
      const y = padT + (H - padT - padB) * (1 - v / max);
      if (pen) ctx.lineTo(x, y); else ctx.moveTo(x, y);
      pen = true;
    });
    ctx.stroke();
  }
  canvas.dataset.points = String(n);
}

function niceMax(v) {
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function fmt(v) {
  if (v >= 1000) return (v / 1000).toFixed(v >= 10000 ? 0 : 1) + "k";
  if (v >= 10 || v === 0) return v.toFixed(0);
  return v.toFixed(v >= 1 ? 1 : 2);
}

function redraw() {
  const s = state.samples;
  drawChart($("#chart-rps"), [{ color: "#3fb950", values: s.map(x => x.requests_per_sec) }]);
  drawChart($("#chart-err"), [{ color: "#f85149", values: s.map(x => x.error_rate * 100) }],
            { min: 1, format: v => fmt(v) + "%" });
  drawChart($("#chart-lat"), [
    { color: "#58a6ff", values: s.map(x => x.p50_ms) },
    { color: "#d29922", values: s.map(x => x.p95_ms) },
    { color: "#f85149", values: s.map(x => x.p99_ms) },
  ], { min: 1 });
  const last = s[s.length - 1];
  $("#rps-now").textContent = last ? fmt(last.requests_per_sec) : "–";
  $("#err-now").textContent = last ? (last.error_rate * 100).toFixed(2) + "%" : "–";
  $("#lat-now").textContent = last && last.p95_ms != null ? "p95 " + fmt(last.p95_ms) : "–";
  $("#chart-rps").dataset.last = last ? String(last.requests_per_sec) : "0";
}

function addSample(sample) {
  if (!sample) return;
  const prev = state.samples[state.samples.length - 1];
  if (prev && prev.at >= sample.at) return;
  state.samples.push(sample);
  if (state.samples.length > KEEP) state.samples.shift();
  redraw();
}

// ---- instances -------------------------------------------------------------

function duration(secs) {
  if (secs == null) return "–";
  if (secs < 60) return Math.floor(secs) + "s";
  if (secs < 3600) return Math.floor(secs / 60) + "m";
  if (secs < 86400) return Math.floor(secs / 3600) + "h" + Math.floor(secs % 3600 / 60) + "m";
  return Math.floor(secs / 86400) + "d";
}

function bytes(n) {
  if (!n) return "–";
  const u = ["B", "KiB", "MiB", "GiB"]; let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return n.toFixed(i ? 1 : 0) + " " + u[i];
}

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
}

function renderStatus(status) {
  state.status = status;
  const inRotation = status.instances.filter(i => i.health === "up").length +
                     status.upstreams.filter(u => u.health === "up").length;
  const total = status.instances.length + status.upstreams.length;
  $("#summary").textContent = `v${status.version} · up ${duration(status.uptime_secs)} · ` +
    `${inRotation}/${total} backends in rotation · ${status.balance}` +
    (status.listen ? ` · serving ${status.listen}` : "") + (status.shutting_down ? " · SHUTTING DOWN" : "");
  const apps = status.apps.length ? status.apps : [];
  const root = $("#apps");
  const seen = new Set();
  for (const app of apps) {
    seen.add(app.name);
    let el = state.apps.get(app.name);
    if (!el) {
      el = $("#app-template").content.firstElementChild.cloneNode(true);
      el.dataset.app = app.name;
      $(".scale", el).addEventListener("click", () => scale(app.name, el));
      $(".reload", el).addEventListener("click", () => reload(app.name, el));
      $(".scale-n", el).value = app.target;
      root.appendChild(el);
      state.apps.set(app.name, el);
    }
    $(".app-name", el).textContent = app.name;
    $(".app-info", el).textContent = `${app.instances} of ${app.target} instances · generation ${app.generation}` +
      (app.operation ? ` · running: ${app.operation}` : "");
    const tbody = $("tbody", el);
    tbody.textContent = "";
    for (const i of status.instances.filter(i => i.app === app.name)) {
      const tr = document.createElement("tr");
      tr.dataset.instance = i.id;
      tr.dataset.state = i.state;
      tr.dataset.health = i.health;
      cell(tr, i.id);
      cell(tr, i.state, "state-" + i.state);
      cell(tr, i.health, "health-" + i.health);
      cell(tr, i.pid ?? "–");
      cell(tr, i.port);
      cell(tr, i.generation);
      cell(tr, i.restarts);
      cell(tr, i.in_flight);
      cell(tr, i.requests);
      cell(tr, bytes(i.rss_bytes));
      cell(tr, duration(i.uptime_secs));
      cell(tr, i.last_check ? `${i.last_check.passed ? "ok" : "failed"} ${i.last_check.duration_ms.toFixed(1)} ms` : "–");
      if (i.failure) tr.title = i.failure;
      tbody.appendChild(tr);
    }
  }
  if (status.upstreams.length) {
    seen.add("(upstreams)");
    let el = state.apps.get("(upstreams)");
    if (!el) {
      el = document.createElement("div");
      el.className = "app";
      el.dataset.app = "(upstreams)";
      el.innerHTML = "<div class=app-head><h2>upstreams</h2></div><table><thead><tr><th>backend</th><th>address</th><th>group</th><th>health</th><th>weight</th><th>in flight</th><th>requests</th><th>ejections</th></tr></thead><tbody></tbody></table>";
      root.appendChild(el);
      state.apps.set("(upstreams)", el);
    }
    const tbody = $("tbody", el);
    tbody.textContent = "";
    for (const u of status.upstreams) {
      const tr = document.createElement("tr");
      tr.dataset.instance = u.id;
      tr.dataset.health = u.health;
      cell(tr, u.id); cell(tr, u.address); cell(tr, u.group ?? "–");
      cell(tr, u.health, "health-" + u.health); cell(tr, u.weight);
      cell(tr, u.in_flight); cell(tr, u.requests); cell(tr, u.ejections);
      tbody.appendChild(tr);
    }
  }
  for (const [name, el] of state.apps) if (!seen.has(name)) { el.remove(); state.apps.delete(name); }
}

// ---- events ----------------------------------------------------------------

function clock(at) {
  return new Date(at * 1000).toISOString().slice(11, 19);
}

// What an event says about an instance's row before the next status does
// (a second later at most): a killed instance shows gone at once.
const ROW_AFTER = { exited: ["exited", "stopped"], crash_loop: ["failed", "stopped"],
                    unhealthy: [null, "down"], ejected: [null, "ejected"], drained: ["stopped", "stopped"] };
const opened = Date.now() / 1000;

function markRow(e) {
  const after = ROW_AFTER[e.kind];
  if (!after || !e.instance || e.at < opened - 2) return;
  const tr = document.querySelector(`tr[data-instance="${CSS.escape(e.instance)}"]`);
  if (!tr || !tr.children.length) return;
  const [st, health] = after;
  if (st && tr.dataset.state !== undefined) {
    tr.dataset.state = st;
    tr.children[1].textContent = st; tr.children[1].className = "state-" + st;
  }
  tr.dataset.health = health;
  const h = tr.dataset.state !== undefined ? tr.children[2] : tr.children[3];
  h.textContent = health; h.className = "health-" + health;
}

function addEvent(e) {
  markRow(e);
  const list = $("#events");
  const li = document.createElement("li");
  li.dataset.kind = e.kind;
  if (TROUBLE.has(e.kind)) li.className = "trouble";
  const t = document.createElement("span"); t.className = "t"; t.textContent = clock(e.at);
  const k = document.createElement("span"); k.className = "k"; k.textContent = e.kind;
  li.append(t, k, document.createTextNode(e.message));
  list.prepend(li);
  while (list.children.length > 200) list.lastElementChild.remove();
}

// ---- operations ------------------------------------------------------------

// POST an operation and show its NDJSON progress until its `done` line.
async function operation(el, path, body) {
  const op = $(".op", el);
  const buttons = el.querySelectorAll("button");
  buttons.forEach(b => b.disabled = true);
  try {
    const resp = await fetch(path, {
      method: "POST", headers: headers({ "Content-Type": "application/json" }),
      body: body ? JSON.stringify(body) : "",
    });
    if (resp.status === 401) { unauthorized("this operation"); op.textContent = "401 Unauthorized"; return; }
    if (!resp.ok) {
      let msg = resp.status + " " + resp.statusText;
      try { msg = (await resp.json()).error || msg; } catch (_) {}
      showAlert(msg);
      op.textContent = msg;
      return;
    }
    showAlert("");
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let end;
      while ((end = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, end); buf = buf.slice(end + 1);
        if (!line.trim()) continue;
        const ev = JSON.parse(line);
        op.textContent = ev.total ? `[${ev.done}/${ev.total}] ${ev.message}` : ev.message;
        if (ev.event === "done") showAlert(ev.message, ev.ok);
      }
    }
  } catch (e) {
    op.textContent = "failed: " + e;
  } finally {
    buttons.forEach(b => b.disabled = false);
  }
}

function scale(app, el) {
  const n = parseInt($(".scale-n", el).value, 10);
  if (!(n >= 0)) { showAlert("instances: a whole number, please"); return; }
  operation(el, "/api/v1/scale?app=" + encodeURIComponent(app), { instances: n });
}

function reload(app, el) {
  if (!confirm(`Replace every instance of ${app} with a fresh one (rolling reload)?`)) return;
  operation(el, "/api/v1/reload?app=" + encodeURIComponent(app));
}

// ---- start -----------------------------------------------------------------

$("#token").value = token;
$("#token-form").addEventListener("submit", ev => {
  ev.preventDefault();
  token = $("#token").value.trim();
  if (token) sessionStorage.setItem("shoal-token", token); else sessionStorage.removeItem("shoal-token");
  showAlert("");
});

async function start() {
  try {
    const resp = await fetch("/api/v1/metrics/history", { headers: headers() });
    if (resp.status === 401) unauthorized("reading");
    else if (resp.ok) { (await resp.json()).samples.forEach(s => state.samples.push(s)); }
  } catch (e) { console.warn(e); }
  redraw();
  follow("/api/v1/metrics/history?follow", msg => { renderStatus(msg.status); addSample(msg.sample); });
  // On a reconnect the stream starts over with the kept events.
  follow("/api/v1/events?follow", addEvent, () => { $("#events").textContent = ""; });
}
start();
