// Supervisor console: live alerts from the hub, newest first.
// Connects to ws(s)://<this host>/ws, resumes after the last seq it saw when the link
// drops, and renders every field with textContent (alert text comes from desks).
"use strict";

const MAX_ROWS = 2000;          // the page shows the newest MAX_ROWS alerts (DOM stays small)
const BACKOFF_MAX_MS = 10000;

const state = {
  token: null,
  lastSeq: 0,                   // newest alert seq received
  lastAckSeq: null,             // newest ack seq received (null until the first welcome)
  epoch: null,                  // which hub database the seqs belong to
  ws: null,
  backoff: 500,
  refused: false,
  rows: new Map(),              // seq -> <tr>
  desks: new Set(),
  rules: new Set(),
};

const $ = (id) => document.getElementById(id);

function readToken() {
  // #token=... keeps the token out of server logs and Referer headers; it is moved to
  // sessionStorage and removed from the address bar.
  const m = /(?:^|[#&])token=([^&]+)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem("monitor-token", decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem("monitor-token");
}

function setStatus(text, online) {
  const el = $("status");
  el.textContent = text;
  el.className = "status " + (online ? "online" : "offline");
  el.dataset.state = online ? "online" : "offline";
}

function fmtTime(unix) {
  const d = new Date(unix * 1000);
  return d.toLocaleTimeString("zh-CN", { hour12: false });
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

// The words that triggered the alert, with the matched phrase highlighted when present.
function textCell(a) {
  const td = el("td", "text");
  const text = String(a.text || "");
  const phrase = a.phrase ? String(a.phrase) : "";
  const i = phrase ? text.indexOf(phrase) : -1;
  if (i < 0) {
    td.textContent = text;
    if (phrase) { td.append(" "); td.append(el("span", "phrase", phrase)); }
  } else {
    td.append(text.slice(0, i), el("span", "phrase", phrase), text.slice(i + phrase.length));
  }
  return td;
}

function addOption(selectId, set, value) {
  if (set.has(value)) return;
  set.add(value);
  const sel = $(selectId);
  const opts = [...sel.options].slice(1).map((o) => o.value);
  opts.push(value);
  opts.sort();
  const current = sel.value;
  sel.length = 1;
  for (const v of opts) sel.append(new Option(v, v));
  sel.value = current;
}

function markAcked(tr, by, at) {
  tr.classList.add("acked");
  tr.dataset.acked = "1";
  const cell = tr.querySelector("td.ack");
  cell.textContent = "";
  cell.append(el("span", "acked-by", `✓ ${by} ${fmtTime(at)}`));
  applyFilter(tr);
}

function addAlert(a, live) {
  if (state.rows.has(a.seq)) return;           // belt and braces: the hub never resends
  const tr = el("tr", `sev-${String(a.severity || "").replace(/[^\w-]/g, "")}`);
  tr.dataset.seq = a.seq;
  tr.dataset.desk = a.desk;
  tr.dataset.rule = a.rule;
  tr.append(
    el("td", "seq", a.seq),
    el("td", "time", fmtTime(a.received)),
    el("td", "desk", a.desk),
    el("td", "rule", a.rule),
    el("td", "call", `${a.call_id} · ${Number(a.start).toFixed(1)}–${Number(a.end).toFixed(1)}s`),
    textCell(a),
    el("td", "evidence", a.evidence),
  );
  const ackCell = el("td", "ack");
  const btn = el("button", "ack-btn", "Acknowledge");
  btn.type = "button";
  btn.addEventListener("click", () => acknowledge(a.seq, btn));
  ackCell.append(btn);
  tr.append(ackCell);
  if (live) {
    tr.classList.add("fresh");
    tr.addEventListener("animationend", () => tr.classList.remove("fresh"), { once: true });
  }

  // Newest first: seqs arrive in increasing order, so a new row goes on top.
  $("alert-rows").prepend(tr);
  state.rows.set(a.seq, tr);
  if (a.acked_at) markAcked(tr, a.acked_by, a.acked_at);
  addOption("desk-filter", state.desks, a.desk);
  addOption("rule-filter", state.rules, a.rule);
  applyFilter(tr);
  while (state.rows.size > MAX_ROWS) {
    const oldest = state.rows.keys().next().value;
    state.rows.get(oldest).remove();
    state.rows.delete(oldest);
  }
  updateCount();
}

function applyFilter(tr) {
  const desk = $("desk-filter").value, rule = $("rule-filter").value;
  const unacked = $("unacked-only").checked;
  const show = (!desk || tr.dataset.desk === desk) && (!rule || tr.dataset.rule === rule)
    && (!unacked || tr.dataset.acked !== "1");
  tr.hidden = !show;
}

function applyFilters() {
  for (const tr of state.rows.values()) applyFilter(tr);
  updateCount();
}

function updateCount() {
  let shown = 0;
  for (const tr of state.rows.values()) if (!tr.hidden) shown++;
  $("count").textContent = `${shown} shown · ${state.rows.size} total · last #${state.lastSeq}`;
  $("empty").hidden = state.rows.size > 0;
}

function acknowledge(seq, btn) {
  if (!state.ws || state.ws.readyState !== WebSocket.OPEN) {
    setStatus("not connected: try again", false);
    return;
  }
  btn.disabled = true;
  btn.textContent = "…";
  state.ws.send(JSON.stringify({ type: "ack_alert", seq }));
}

function onFrame(msg) {
  switch (msg.type) {
    case "welcome":
      if (msg.reset) {
        // The hub's database was replaced: our seqs mean nothing there. Start over.
        for (const tr of state.rows.values()) tr.remove();
        state.rows.clear();
        state.lastAckSeq = null;
      }
      state.epoch = msg.epoch;
      state.lastSeq = Math.max(msg.reset ? 0 : state.lastSeq, msg.since);
      if (state.lastAckSeq === null) state.lastAckSeq = msg.last_ack_seq;
      break;
    case "alert":
      if (msg.seq <= state.lastSeq) return;
      state.lastSeq = msg.seq;
      addAlert(msg, true);
      break;
    case "acked": {
      if (state.lastAckSeq === null || msg.ack_seq > state.lastAckSeq) state.lastAckSeq = msg.ack_seq;
      const tr = state.rows.get(msg.seq);
      if (tr) markAcked(tr, msg.by, msg.at);
      break;
    }
    case "caught_up":
      setStatus("live", true);
      state.backoff = 500;
      updateCount();
      break;
    case "error":
      console.warn("hub error:", msg.code, msg.message);
      break;
  }
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${scheme}//${location.host}/ws`);
  state.ws = ws;
  setStatus("connecting…", false);
  ws.onopen = () => {
    const hello = { type: "hello", role: "console", token: state.token, name: "web",
                    since: state.lastSeq, tail: MAX_ROWS };
    if (state.lastAckSeq !== null) hello.ack_since = state.lastAckSeq;
    if (state.epoch) hello.epoch = state.epoch;
    ws.send(JSON.stringify(hello));
    setStatus("catching up…", false);
  };
  ws.onmessage = (ev) => {
    let msg;
    try { msg = JSON.parse(ev.data); } catch { return; }
    onFrame(msg);
  };
  ws.onclose = (ev) => {
    state.ws = null;
    if (ev.code === 4401 || ev.code === 4403) {
      // A wrong token will not get better by retrying: ask for another one.
      state.refused = true;
      sessionStorage.removeItem("monitor-token");
      setStatus("token refused", false);
      showLogin(`Hub refused the token: ${ev.reason || ev.code}`);
      return;
    }
    const wait = state.backoff;
    state.backoff = Math.min(state.backoff * 2, BACKOFF_MAX_MS);
    setStatus(`offline, reconnecting in ${Math.round(wait / 1000)}s (resume after #${state.lastSeq})`, false);
    setTimeout(connect, wait * (0.5 + Math.random() / 2));
  };
}

function showLogin(message) {
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  $("token-input").focus();
}

function start() {
  for (const id of ["desk-filter", "rule-filter", "unacked-only"]) {
    $(id).addEventListener("change", applyFilters);
  }
  $("login").addEventListener("submit", (ev) => {
    ev.preventDefault();
    state.token = $("token-input").value.trim();
    if (!state.token) return;
    sessionStorage.setItem("monitor-token", state.token);
    $("login").hidden = true;
    state.refused = false;
    connect();
  });
  updateCount();
  state.token = readToken();
  if (!state.token) {
    setStatus("no token", false);
    showLogin("Enter the console token (or open the page as /#token=…).");
    return;
  }
  connect();
}

document.addEventListener("DOMContentLoaded", start);
