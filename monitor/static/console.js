// Supervisor console: the live board of desks, a desk's live transcript, live alerts and
// the alert history, in Chinese (English as an option).
// Connects to ws(s)://<this host>/ws, resumes after the last seq it saw when the link
// drops, and renders every field with textContent (everything shown comes from desks).
"use strict";

const MAX_ROWS = 2000;          // the alerts view keeps the newest MAX_ROWS (DOM stays small)
const BACKOFF_MAX_MS = 10000;
const ATTENTION = new Set(["critical", "major", "escalation"]);  // notified, counted, marked

const UI = {
  zh: {
    title: "坐席质检监控", tab_board: "看板", tab_alerts: "告警", tab_history: "历史",
    notify_on: "开启通知", notify_ok: "通知已开启", notify_denied: "通知被浏览器拒绝", mute: "静音",
    token_label: "控制台令牌", connect: "连接", board_empty: "还没有坐席连接。", back: "← 返回看板",
    desk: "坐席", rule: "规则", all_desks: "全部坐席", all_rules: "全部规则", unacked_only: "只看未确认",
    col_time: "时间", col_call: "通话 · 时刻", col_text: "原话", col_evidence: "依据", col_ack: "处理",
    no_alerts: "暂无告警。", from: "从", to: "到", words: "关键词", search: "搜索", more: "更早的告警",
    connecting: "连接中…", catching_up: "同步中…", live: "实时", no_token: "缺少令牌",
    token_refused: "令牌被拒绝", not_connected: "未连接，请重试", mono_side: "混合录音，这句是坐席的可能性",
    offline: (s, seq) => `离线，${s} 秒后重连（从 #${seq} 之后继续）`,
    ask_token: "请输入控制台令牌（或以 /#token=… 打开本页）。", refused: (r) => `集线器拒绝了令牌：${r}`,
    on_call: "通话中", idle: "空闲", disconnected: "未连接", stale: "无心跳",
    agent: "坐席", caller: "客户", score: "得分", profile: "规范",
    attention: (n) => `${n} 条未处理告警`, ack: "确认", ack_confirm: "确认处理", cancel: "取消",
    note_ph: "备注（可选）", acked_by: (by, at) => `✓ ${by} 于 ${at} 确认`,
    count: (shown, total, seq) => `显示 ${shown} 条 · 共 ${total} 条 · 最新 #${seq}`,
    h_count: (n, more) => `找到 ${n} 条${more ? "（还有更多）" : ""}`,
    transcript_of: (desk, call) => `${desk} · 通话 ${call}`, no_call: "该坐席现在没有通话。",
    no_lines: "还没有转写内容。", transcripts_off: "集线器未开启转写（--transcripts off）。",
    call_over: "通话已结束", seconds: "秒", last_call: (s) => `上一通得分 ${s}`,
    notify_title: (desk, rule) => `${desk}：${rule}`,
  },
  en: {
    title: "Call compliance monitor", tab_board: "Board", tab_alerts: "Alerts", tab_history: "History",
    notify_on: "Enable notifications", notify_ok: "Notifications on", notify_denied: "Notifications blocked", mute: "Mute",
    token_label: "Console token", connect: "Connect", board_empty: "No desk has connected yet.", back: "← Board",
    desk: "Desk", rule: "Rule", all_desks: "all desks", all_rules: "all rules", unacked_only: "unacknowledged only",
    col_time: "Time", col_call: "Call · t", col_text: "What was said", col_evidence: "Evidence", col_ack: "Action",
    no_alerts: "No alerts yet.", from: "From", to: "To", words: "Words", search: "Search", more: "Older alerts",
    connecting: "connecting…", catching_up: "catching up…", live: "live", no_token: "no token",
    token_refused: "token refused", not_connected: "not connected: try again", mono_side: "mixed mono: the agent's line at",
    offline: (s, seq) => `offline, reconnecting in ${s}s (resume after #${seq})`,
    ask_token: "Enter the console token (or open the page as /#token=…).", refused: (r) => `Hub refused the token: ${r}`,
    on_call: "on call", idle: "idle", disconnected: "disconnected", stale: "no heartbeat",
    agent: "Agent", caller: "Caller", score: "score", profile: "profile",
    attention: (n) => `${n} unacknowledged`, ack: "Acknowledge", ack_confirm: "Confirm", cancel: "Cancel",
    note_ph: "note (optional)", acked_by: (by, at) => `✓ ${by} at ${at}`,
    count: (shown, total, seq) => `${shown} shown · ${total} total · last #${seq}`,
    h_count: (n, more) => `${n} found${more ? " (more)" : ""}`,
    transcript_of: (desk, call) => `${desk} · call ${call}`, no_call: "This desk is not on a call.",
    no_lines: "Nothing transcribed yet.", transcripts_off: "The hub does not take transcripts (--transcripts off).",
    call_over: "call ended", seconds: "s", last_call: (s) => `last call ${s}`,
    notify_title: (desk, rule) => `${desk}: ${rule}`,
  },
};

const state = {
  token: null,
  lang: localStorage.getItem("monitor-lang") === "en" ? "en" : "zh",
  labels: { rules: {}, severities: {}, evidence: [], who: {}, review_rules: [] },
  lastSeq: 0,                   // newest alert seq received
  lastAckSeq: null,             // newest ack seq received (null until the first welcome)
  epoch: null,                  // which hub database the seqs belong to
  ws: null,
  backoff: 500,
  live: false,                  // caught up: alerts from now on are new (notify)
  rows: new Map(),              // seq -> <tr>
  alerts: new Map(),            // seq -> alert (for the transcript highlights)
  desks: new Map(),             // desk -> desk frame
  tiles: new Map(),             // desk -> tile element
  deskOptions: new Set(),
  rules: new Set(),
  view: "board",
  transcript: null,             // {desk, call_id} shown in the transcript view
  history: { before: null, params: null },
};

const $ = (id) => document.getElementById(id);
const t = (key, ...args) => { const v = UI[state.lang][key]; return typeof v === "function" ? v(...args) : v; };

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

// -- wording: rule names, severities, evidence from the hub's one table (monitor/labels.py) --

// `key`'s wording in the page's language from one of the table's {zh, en} maps; the key if unknown.
function named(table, key) {
  const r = (table || {})[key];
  return r ? r[state.lang] : String(key);
}

function ruleName(rule) { return named(state.labels.rules, rule); }

function evidenceText(text) {
  text = String(text || "");
  if (state.lang !== "zh") return text;
  for (const e of state.labels.evidence) {
    if (!e.re) { try { e.re = new RegExp(e.pattern); } catch { e.re = /$^/; } }
    const m = e.re.exec(text);
    if (m) {
      let out = e.zh;
      m.slice(1).forEach((g, i) => { out = out.split(`{${i + 1}}`).join(state.labels.who[g] || g); });
      return out;
    }
  }
  return text;
}

function locale() { return state.lang === "zh" ? "zh-CN" : "en-GB"; }

function fmtDateTime(unix) {
  return new Date(unix * 1000).toLocaleString(locale(), {
    month: "numeric", day: "numeric", weekday: "short", hour: "2-digit", minute: "2-digit",
    second: "2-digit", hour12: false });
}

function fmtDuration(s) {
  s = Math.max(0, Math.floor(s));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  const mm = String(m).padStart(2, "0"), ss = String(sec).padStart(2, "0");
  return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

function sevClass(sev) { return `sev-${String(sev || "").replace(/[^\w-]/g, "")}`; }

function applyLanguage() {
  document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
  for (const e of document.querySelectorAll("[data-i18n]")) e.textContent = t(e.dataset.i18n);
  $("lang").value = state.lang;
  if (state.status) setStatus(...state.status);
  for (const tr of state.rows.values()) relabelRow(tr);
  for (const name of state.desks.keys()) renderTile(name);
  refillRuleSelects();
  updateCount();
  updateTitle();
}

// -- connection ---------------------------------------------------------------------------

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

// The status line, kept as its wording key so a change of language rewords it.
function setStatus(online, key, ...args) {
  state.status = [online, key, ...args];
  const s = $("status");
  s.textContent = t(key, ...args);
  s.className = "status " + (online ? "online" : "offline");
  s.dataset.state = online ? "online" : "offline";
}

function api(path) {
  return fetch(path, { headers: { Authorization: `Bearer ${state.token}` }, cache: "no-store" })
    .then((r) => r.ok ? r.json() : r.json().then((b) => Promise.reject(new Error(b.error || r.status))));
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${scheme}//${location.host}/ws`);
  state.ws = ws;
  state.live = false;
  setStatus(false, "connecting");
  ws.onopen = () => {
    // No name: the hub records acknowledgements under the name bound to the token.
    const hello = { type: "hello", role: "console", token: state.token, since: state.lastSeq, tail: MAX_ROWS };
    if (state.lastAckSeq !== null) hello.ack_since = state.lastAckSeq;
    if (state.epoch) hello.epoch = state.epoch;
    ws.send(JSON.stringify(hello));
    setStatus(false, "catching_up");
  };
  ws.onmessage = (ev) => {
    let msg;
    try { msg = JSON.parse(ev.data); } catch { return; }
    onFrame(msg);
  };
  ws.onclose = (ev) => {
    state.ws = null;
    state.live = false;
    if (ev.code === 4401 || ev.code === 4403) {
      // A wrong token will not get better by retrying: ask for another one.
      sessionStorage.removeItem("monitor-token");
      setStatus(false, "token_refused");
      showLogin(t("refused", ev.reason || ev.code));
      return;
    }
    const wait = state.backoff;
    state.backoff = Math.min(state.backoff * 2, BACKOFF_MAX_MS);
    setStatus(false, "offline", Math.round(wait / 1000), state.lastSeq);
    for (const d of state.desks.values()) d.connected = false;  // unknown until we are back
    for (const name of state.desks.keys()) renderTile(name);
    setTimeout(connect, wait * (0.5 + Math.random() / 2));
  };
}

function onFrame(msg) {
  switch (msg.type) {
    case "welcome":
      if (msg.reset) {
        // The hub's database was replaced: our seqs mean nothing there. Start over.
        for (const tr of state.rows.values()) tr.remove();
        state.rows.clear();
        state.alerts.clear();
        state.lastAckSeq = null;
      }
      state.epoch = msg.epoch;
      state.lastSeq = Math.max(msg.reset ? 0 : state.lastSeq, msg.since);
      if (state.lastAckSeq === null) state.lastAckSeq = msg.last_ack_seq;
      break;
    case "alert":
      if (msg.seq <= state.lastSeq) return;
      state.lastSeq = msg.seq;
      addAlert(msg, state.live);
      break;
    case "acked": {
      if (state.lastAckSeq === null || msg.ack_seq > state.lastAckSeq) state.lastAckSeq = msg.ack_seq;
      const a = state.alerts.get(msg.seq);
      if (a) { a.acked_by = msg.by; a.acked_at = msg.at; a.ack_note = msg.note; a.withdrawn = msg.withdrawn; }
      const tr = state.rows.get(msg.seq);
      if (tr) markAcked(tr, msg.by, msg.at, msg.note, msg.withdrawn);
      updateTitle();
      break;
    }
    case "caught_up":
      setStatus(true, "live");
      state.backoff = 500;
      state.live = true;
      updateCount();
      updateTitle();
      if (state.transcript) openTranscript(state.transcript.desk);  // lines said while away
      break;
    case "desk":
      onDesk(msg);
      break;
    case "transcript":
      onLine(msg);
      break;
    case "error":
      console.warn("hub error:", msg.code, msg.message);
      break;
  }
}

// -- the board ----------------------------------------------------------------------------

function onDesk(d) {
  const old = state.desks.get(d.desk);
  if (old && old.call_id === d.call_id && d.on_call) {
    // Lines that arrived since this frame was made stay (the hub's copy may be older).
    d.last_words = Object.assign({}, d.last_words || {}, old.last_words_live || {});
    d.last_words_live = old.last_words_live;
  }
  state.desks.set(d.desk, d);
  addOption("desk-filter", state.deskOptions, d.desk);
  renderTile(d.desk);
  sortBoard();
  if (state.transcript && state.transcript.desk === d.desk && d.call_id
      && d.call_id !== state.transcript.call_id) openTranscript(d.desk);  // the next call
  else if (state.transcript && state.transcript.desk === d.desk) renderTranscriptState();
}

function onLine(line) {
  const d = state.desks.get(line.desk);
  if (d && d.call_id === line.call_id) {
    d.last_words_live = Object.assign({}, d.last_words_live || {}, { [line.role]: line.text });
    d.last_words = Object.assign({}, d.last_words || {}, { [line.role]: line.text });
    renderTile(line.desk);
  }
  const tv = state.transcript;
  if (tv && tv.desk === line.desk && tv.call_id === line.call_id) {
    tv.lines.push(line);
    appendLine(line);
  }
}

function deskRank(d) {
  if (d.attention > 0) return 0;
  if (d.on_call) return 1;
  if (d.connected && !d.stale) return 2;
  return 3;
}

function sortBoard() {
  const names = [...state.desks.keys()].sort((a, b) => {
    const x = state.desks.get(a), y = state.desks.get(b);
    return deskRank(x) - deskRank(y)
      || (x.on_call && y.on_call ? (x.score ?? 100) - (y.score ?? 100) || (x.call_started - y.call_started) : 0)
      || a.localeCompare(b);
  });
  const board = $("board");
  names.forEach((name, i) => {
    const tile = state.tiles.get(name);
    if (board.children[i] !== tile) board.insertBefore(tile, board.children[i] || null);
  });
  $("board-empty").hidden = names.length > 0;
}

function renderTile(name) {
  const d = state.desks.get(name);
  let tile = state.tiles.get(name);
  if (!tile) {
    tile = el("article", "tile");
    tile.tabIndex = 0;
    tile.setAttribute("role", "button");
    tile.dataset.desk = name;
    const head = el("div", "tile-head");
    head.append(el("span", "dot"), el("b", "desk-name", name), el("span", "mark", "!"), el("span", "score"));
    const st = el("div", "tile-state");
    st.append(el("span", "state"), el("span", "duration"), el("span", "profile"));
    const agent = el("p", "words agent");
    agent.append(el("span", "who"), el("span", "said"));
    const caller = el("p", "words caller");
    caller.append(el("span", "who"), el("span", "said"));
    tile.append(head, st, agent, caller, el("div", "tile-foot"));
    tile.addEventListener("click", () => openTranscript(name));
    tile.addEventListener("keydown", (ev) => { if (ev.key === "Enter") openTranscript(name); });
    state.tiles.set(name, tile);
    $("board").append(tile);
  }
  const online = d.connected && !d.stale;
  const st = !d.connected ? "offline" : d.on_call ? "on_call" : "idle";
  setAttr(tile, "data-state", st);
  setAttr(tile, "data-call-id", d.call_id || "");
  setAttr(tile, "data-attention", String(d.attention || 0));
  tile.classList.toggle("on-call", !!d.on_call);
  tile.classList.toggle("offline", !online);
  tile.classList.toggle("attention", (d.attention || 0) > 0);
  tile.classList.toggle("escalation", (d.escalations || 0) > 0);  // the caller is escalating
  const q = (sel) => tile.querySelector(sel);
  q(".mark").hidden = !(d.attention > 0);
  setAttr(q(".mark"), "title", t("attention", d.attention || 0));
  setText(q(".state"), !d.connected ? t("disconnected") : d.stale ? t("stale")
    : d.on_call ? t("on_call") : t("idle"));
  setText(q(".profile"), d.on_call && d.profile ? d.profile : "");
  setText(q(".score"), d.on_call && d.score != null ? `${t("score")} ${d.score}` : "");
  q(".score").classList.toggle("low", d.on_call && d.score != null && d.score < 90);
  const words = d.on_call ? (d.last_words || {}) : {};
  for (const role of ["agent", "caller"]) {
    const p = q(`.words.${role}`);
    p.hidden = !words[role];
    setText(p.querySelector(".who"), t(role));
    setText(p.querySelector(".said"), words[role] || "");
  }
  setText(q(".tile-foot"), !d.on_call && d.last_call ? t("last_call", d.last_call.score) : "");
  tickTile(tile, d);
}

// Only what changed is touched: 50 tiles re-rendered on every frame would keep the
// browser busy laying out text that did not change.
function setText(node, text) { if (node.textContent !== text) node.textContent = text; }
function setAttr(node, name, value) { if (node.getAttribute(name) !== value) node.setAttribute(name, value); }

function tickTile(tile, d) {
  const dur = tile.querySelector(".duration");
  const text = d.on_call && d.call_started ? fmtDuration(Date.now() / 1000 - d.call_started) : "";
  if (dur.textContent !== text) dur.textContent = text;
}

function tickBoard() {
  for (const [name, tile] of state.tiles) tickTile(tile, state.desks.get(name));
}

// -- the live transcript of a desk's call ----------------------------------------------------

function showView(view) {
  state.view = view;
  for (const v of ["board", "transcript", "alerts", "history"]) $(`view-${v}`).hidden = v !== view;
  for (const b of document.querySelectorAll(".tab")) {
    b.classList.toggle("active", b.dataset.view === view || (view === "transcript" && b.dataset.view === "board"));
  }
  if (view !== "transcript") state.transcript = null;
}

function openTranscript(desk) {
  const d = state.desks.get(desk);
  const tv = { desk, call_id: d && d.call_id, lines: [], loading: true };
  state.transcript = tv;
  showView("transcript");
  $("transcript-lines").textContent = "";
  renderTranscriptState();
  const q = `desk=${encodeURIComponent(desk)}` + (tv.call_id ? `&call_id=${encodeURIComponent(tv.call_id)}` : "");
  api(`/api/transcript?${q}`).then((res) => {
    if (state.transcript !== tv) return;
    tv.call_id = res.call_id;
    tv.off = !res.transcripts;
    for (const a of res.alerts) if (!state.alerts.has(a.seq)) state.alerts.set(a.seq, a);
    // Lines that came live while the request was out are kept (once).
    const stored = new Set(res.lines.map((x) => `${x.role}:${x.start}`));
    tv.lines = res.lines.concat(tv.lines.filter((x) => !stored.has(`${x.role}:${x.start}`)));
    tv.loading = false;
    $("transcript-lines").textContent = "";
    for (const line of tv.lines) appendLine(line);
    renderTranscriptState();
  }).catch((e) => { console.warn("transcript:", e); tv.loading = false; renderTranscriptState(); });
}

function renderTranscriptState() {
  const tv = state.transcript;
  if (!tv) return;
  const d = state.desks.get(tv.desk) || {};
  $("transcript-title").textContent = tv.call_id ? t("transcript_of", tv.desk, tv.call_id) : tv.desk;
  const over = !(d.on_call && d.call_id === tv.call_id);
  $("transcript-state").textContent = over ? (tv.call_id ? t("call_over") : "")
    : `${t("on_call")} · ${d.score != null ? `${t("score")} ${d.score}` : ""}`;
  const empty = $("transcript-empty");
  empty.hidden = tv.lines.length > 0 || tv.loading;
  empty.textContent = tv.off ? t("transcripts_off") : tv.call_id ? t("no_lines") : t("no_call");
}

function callAlerts(desk, callId) {
  return [...state.alerts.values()].filter((a) => a.desk === desk && a.call_id === callId);
}

// A line with the phrases behind the call's alerts highlighted.
function appendLine(line) {
  const li = el("li", `line ${line.role === "agent" ? "agent" : "caller"}`);
  li.dataset.start = line.start;
  li.append(el("span", "who", t(line.role === "agent" ? "agent" : "caller")),
            el("span", "at", fmtDuration(line.start)));
  const said = el("span", "said");
  fillHighlighted(said, String(line.text), callAlerts(line.desk || state.transcript.desk, line.call_id), line, li);
  li.append(said);
  const list = $("transcript-lines");
  // Lines come in the order they were recognised: keep the list in call time.
  let after = null;
  for (const other of list.children) if (Number(other.dataset.start) > line.start) { after = other; break; }
  list.insertBefore(li, after);
  $("transcript-empty").hidden = true;
  if (!after) li.scrollIntoView({ block: "nearest" });
}

function fillHighlighted(node, text, alerts, line, li) {
  const phrases = [];
  for (const a of alerts) {
    const overlaps = a.start <= line.end + 0.5 && a.end >= line.start - 0.5;
    if (a.phrase && text.includes(a.phrase)) phrases.push([a.phrase, a]);
    else if (overlaps && a.text && (a.text.includes(text) || text.includes(a.text))) {
      li.classList.add("flagged", sevClass(a.severity));
      li.title = ruleName(a.rule);
    }
  }
  if (!phrases.length) { node.textContent = text; return; }
  let rest = text;
  while (rest) {
    let best = null;
    for (const [p, a] of phrases) {
      const i = rest.indexOf(p);
      if (i >= 0 && (!best || i < best[0])) best = [i, p, a];
    }
    if (!best) { node.append(rest); break; }
    const [i, p, a] = best;
    const mark = el("mark", `phrase ${sevClass(a.severity)}`, p);
    mark.title = ruleName(a.rule);
    node.append(rest.slice(0, i), mark);
    rest = rest.slice(i + p.length);
  }
  li.classList.add("flagged");
}

// -- alerts -------------------------------------------------------------------------------

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
  for (const v of opts) sel.append(new Option(selectId === "rule-filter" ? ruleName(v) : v, v));
  sel.value = current;
}

function refillRuleSelects() {
  for (const id of ["rule-filter", "h-rule"]) {
    const sel = $(id);
    const values = id === "h-rule" ? [...new Set([...Object.keys(state.labels.rules), ...state.rules])].sort()
      : [...sel.options].slice(1).map((o) => o.value);
    const current = sel.value;
    sel.length = 1;
    for (const v of values) sel.append(new Option(ruleName(v), v));
    sel.value = current;
  }
}

// A mono desk's alert says how sure its line is the agent's (floored, as the reports show it:
// 0.795 under the 0.8 bar never reads 80%).
function alertEvidence(a) {
  const conf = a.role_confidence;
  // a finding to review says how sure in its own evidence
  const review = (state.labels.review_rules || []).includes(a.rule);
  if (conf === undefined || conf === null || review) return evidenceText(a.evidence);
  return `${evidenceText(a.evidence)} · ${t("mono_side")} ${Math.floor(Number((100 * Number(conf)).toFixed(9)))}%`;
}

function withdrawnReason(reason) { return named(state.labels.withdrawn, reason); }

function alertRow(a, withAck) {
  const tr = el("tr", sevClass(a.severity));
  tr.dataset.seq = a.seq;
  tr.dataset.desk = a.desk;
  tr.dataset.rule = a.rule;
  tr.dataset.severity = a.severity || "";
  const rule = el("td", "rule", ruleName(a.rule));
  rule.title = a.rule;
  tr.append(
    el("td", "seq", a.seq),
    el("td", "time", fmtDateTime(a.received)),
    el("td", "desk", a.desk),
    rule,
    el("td", "call", `${a.call_id} · ${Number(a.start).toFixed(1)}–${Number(a.end).toFixed(1)}s`),
    textCell(a),
    el("td", "evidence", alertEvidence(a)),
  );
  const ackCell = el("td", "ack");
  tr.dataset.ackable = withAck ? "1" : "";
  if (withAck) ackCell.append(ackButton(a.seq, ackCell));
  tr.append(ackCell);
  if (a.acked_at) markAcked(tr, a.acked_by, a.acked_at, a.ack_note, a.withdrawn);
  return tr;
}

function relabelRow(tr) {
  const a = state.alerts.get(Number(tr.dataset.seq));
  if (!a) return;
  tr.querySelector("td.rule").textContent = ruleName(a.rule);
  tr.querySelector("td.evidence").textContent = alertEvidence(a);
  tr.querySelector("td.time").textContent = fmtDateTime(a.received);
  const btn = tr.querySelector(".ack-btn");
  if (btn) btn.textContent = t("ack");
  if (a.acked_at) markAcked(tr, a.acked_by, a.acked_at, a.ack_note, a.withdrawn);
}

function ackButton(seq, cell) {
  const btn = el("button", "ack-btn", t("ack"));
  btn.type = "button";
  btn.addEventListener("click", () => openAckForm(seq, cell));
  return btn;
}

// Acknowledge with an optional note: the hub records who (the token's supervisor) and when.
function openAckForm(seq, cell) {
  if (cell.querySelector(".ack-form")) return;
  const form = el("form", "ack-form");
  const note = el("input", "ack-note");
  note.type = "text";
  note.maxLength = 500;
  note.placeholder = t("note_ph");
  const ok = el("button", "ack-confirm", t("ack_confirm"));
  ok.type = "submit";
  const cancel = el("button", "ack-cancel", t("cancel"));
  cancel.type = "button";
  cancel.addEventListener("click", () => form.remove());
  form.append(note, ok, cancel);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (!state.ws || state.ws.readyState !== WebSocket.OPEN) {
      setStatus(false, "not_connected");
      return;
    }
    ok.disabled = true;
    const msg = { type: "ack_alert", seq };
    if (note.value.trim()) msg.note = note.value.trim();
    state.ws.send(JSON.stringify(msg));
  });
  cell.append(form);
  note.focus();
}

// withdrawn: the desk took the alert back (a reason key of the labels table); a supervisor's
// acknowledgement, before or after it, stays shown, and a supervisor may still make one (by "":
// no one has), without losing a note being typed when the withdrawal arrives.
function markAcked(tr, by, at, note, withdrawn) {
  tr.classList.add("acked");
  tr.dataset.acked = "1";
  tr.classList.toggle("withdrawn", Boolean(withdrawn));
  const cell = tr.querySelector("td.ack");
  const typing = by ? null : cell.querySelector(".ack-form");
  cell.textContent = "";
  if (withdrawn) cell.append(el("span", "withdrawn-why", withdrawnReason(withdrawn)));
  if (by) cell.append(el("span", "acked-by", t("acked_by", by, fmtDateTime(at))));
  else if (tr.dataset.ackable === "1") cell.append(ackButton(Number(tr.dataset.seq), cell), ...(typing ? [typing] : []));
  if (note) cell.append(el("span", "ack-note-text", note));
  applyFilter(tr);
}

function addAlert(a, live) {
  if (state.rows.has(a.seq)) return;           // belt and braces: the hub never resends
  state.alerts.set(a.seq, a);
  const tr = alertRow(a, true);
  if (live) {
    tr.classList.add("fresh");
    tr.addEventListener("animationend", () => tr.classList.remove("fresh"), { once: true });
  }
  // Newest first: seqs arrive in increasing order, so a new row goes on top.
  $("alert-rows").prepend(tr);
  state.rows.set(a.seq, tr);
  addOption("desk-filter", state.deskOptions, a.desk);
  addOption("rule-filter", state.rules, a.rule);
  applyFilter(tr);
  while (state.rows.size > MAX_ROWS) {
    const oldest = state.rows.keys().next().value;
    state.rows.get(oldest).remove();
    state.rows.delete(oldest);
    state.alerts.delete(oldest);
  }
  updateCount();
  updateTitle();
  const tv = state.transcript;
  if (tv && tv.desk === a.desk && tv.call_id === a.call_id) {
    $("transcript-lines").textContent = "";
    for (const line of tv.lines) appendLine(line);
  }
  if (live && ATTENTION.has(a.severity) && !a.acked_at) notify(a);
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
  $("count").textContent = t("count", shown, state.rows.size, state.lastSeq);
  $("empty").hidden = state.rows.size > 0;
}

// -- noticing without staring: tab title, sound, browser notification -----------------------

function unackedCount() {
  let n = 0;
  for (const a of state.alerts.values()) if (ATTENTION.has(a.severity) && !a.acked_at && state.rows.has(a.seq)) n++;
  return n;
}

function updateTitle() {
  const n = unackedCount();
  document.title = (n ? `(${n}) ` : "") + t("title");
  const badge = $("unacked-badge");
  badge.hidden = n === 0;
  badge.textContent = String(n);
}

let audio = null;
function beep(escalation) {
  try {
    audio = audio || new AudioContext();
    const osc = audio.createOscillator(), gain = audio.createGain();
    osc.frequency.value = escalation ? 660 : 880;
    gain.gain.setValueAtTime(0.2, audio.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.5);
    osc.connect(gain).connect(audio.destination);
    osc.start();
    osc.stop(audio.currentTime + 0.5);
  } catch (e) { /* no sound device: the title and the notification still say it */ }
}

function notify(a) {
  window.__notified = (window.__notified || 0) + 1;   // for tests: how many alerts were notified
  if ($("mute").checked) return;
  beep(a.severity === "escalation");
  if ("Notification" in window && Notification.permission === "granted") {
    try {
      const n = new Notification(t("notify_title", a.desk, ruleName(a.rule)),
        { body: String(a.text || evidenceText(a.evidence)).slice(0, 120), tag: `alert-${a.seq}` });
      n.onclick = () => { window.focus(); showView("alerts"); };
    } catch (e) { /* some browsers only allow notifications from a service worker */ }
  }
}

// -- history ------------------------------------------------------------------------------

function dayStart(value) { return value ? new Date(`${value}T00:00:00`).getTime() / 1000 : null; }

function searchHistory(more) {
  let params = state.history.params;
  if (!more) {
    params = new URLSearchParams();
    const from = dayStart($("h-from").value), to = dayStart($("h-to").value);
    if (from !== null) params.set("from", String(from));
    if (to !== null) params.set("to", String(to + 86400));  // the whole last day
    for (const [id, key] of [["h-desk", "desk"], ["h-rule", "rule"], ["h-q", "q"]]) {
      const v = $(id).value.trim();
      if (v) params.set(key, v);
    }
    params.set("limit", "100");
    state.history = { params, before: null, n: 0 };
    $("history-rows").textContent = "";
  }
  const q = new URLSearchParams(params);
  if (more && state.history.before) q.set("before", String(state.history.before));
  if (![...q.keys()].some((k) => k !== "limit")) q.set("before", String(2 ** 53));  // search mode
  api(`/api/alerts?${q}`).then((res) => {
    for (const a of res.alerts) $("history-rows").append(alertRow(a, false));
    state.history.n += res.alerts.length;
    state.history.before = res.next_before;
    $("history-more").hidden = !res.more;
    $("h-count").textContent = t("h_count", state.history.n, res.more);
  }).catch((e) => { $("h-count").textContent = String(e.message || e); });
}

// -- start ----------------------------------------------------------------------------------

function showLogin(message) {
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  $("token-input").focus();
}

function start() {
  for (const id of ["desk-filter", "rule-filter", "unacked-only"]) {
    $(id).addEventListener("change", applyFilters);
  }
  for (const b of document.querySelectorAll(".tab")) b.addEventListener("click", () => showView(b.dataset.view));
  $("transcript-back").addEventListener("click", () => showView("board"));
  $("lang").addEventListener("change", () => {
    state.lang = $("lang").value === "en" ? "en" : "zh";
    localStorage.setItem("monitor-lang", state.lang);
    applyLanguage();
  });
  $("mute").checked = localStorage.getItem("monitor-mute") === "1";
  $("mute").addEventListener("change", () => localStorage.setItem("monitor-mute", $("mute").checked ? "1" : "0"));
  $("notify-btn").addEventListener("click", () => {
    if (!("Notification" in window)) return;
    Notification.requestPermission().then((p) => {
      $("notify-btn").textContent = t(p === "granted" ? "notify_ok" : "notify_denied");
    });
  });
  $("history-form").addEventListener("submit", (ev) => { ev.preventDefault(); searchHistory(false); });
  $("history-more").addEventListener("click", () => searchHistory(true));
  $("login").addEventListener("submit", (ev) => {
    ev.preventDefault();
    state.token = $("token-input").value.trim();
    if (!state.token) return;
    sessionStorage.setItem("monitor-token", state.token);
    $("login").hidden = true;
    connect();
  });
  setInterval(tickBoard, 250);  // a running duration is never a second late
  applyLanguage();
  state.token = readToken();
  const go = () => {
    if (!state.token) {
      setStatus(false, "no_token");
      showLogin(t("ask_token"));
      return;
    }
    connect();
  };
  // The wording table first (it is small and needs no token), then the live stream.
  fetch("/api/labels", { cache: "no-store" }).then((r) => r.json()).then((labels) => {
    state.labels = labels;
    applyLanguage();
  }).catch(() => {}).finally(go);
}

document.addEventListener("DOMContentLoaded", start);
