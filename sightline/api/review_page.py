"""The review page (`/live/alerts`): no build step, no external assets, like the live view.

Alerts newest first with their snapshot; a click plays the clip; Confirm / False positive post a
verdict with the session cookie (same-origin fetch, JSON), never a token in a URL or script.
"""

REVIEW_HTML = r"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Sightline alerts</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body { font-family: system-ui, sans-serif; margin: 0; background: #111; color: #eee; }
  header { padding: 8px 16px; background: #222; display: flex; gap: 16px; align-items: baseline; }
  header a { color: #9cf; } h1 { font-size: 18px; margin: 0; }
  #status { color: #9a9; font-size: 13px; }
  form { display: flex; gap: 10px; padding: 10px 16px; flex-wrap: wrap; font-size: 13px;
         background: #181818; }
  main { display: flex; gap: 16px; padding: 16px; align-items: flex-start; }
  #alerts { flex: 1; list-style: none; padding: 0; margin: 0; max-height: 85vh; overflow-y: auto; }
  #alerts li { display: flex; gap: 10px; background: #1c1c1c; margin-bottom: 6px; padding: 6px;
               border-left: 4px solid #888; cursor: pointer; font-size: 13px; }
  #alerts li.selected { outline: 2px solid #9cf; }
  #alerts li.warning { border-color: #e0a030; } #alerts li.critical { border-color: #e04040; }
  #alerts li.info { border-color: #4080e0; }
  .thumb { width: 160px; min-width: 160px; height: 100px; object-fit: contain; background: #000; }
  .nothumb { width: 160px; min-width: 160px; height: 100px; display: flex; align-items: center;
             justify-content: center; background: #000; color: #888; font-size: 12px; }
  .when { color: #999; font-size: 11px; }
  .verdict.confirmed { color: #6d6; } .verdict.false_positive { color: #e66; }
  button { font-size: 12px; margin-right: 4px; }
  #viewer { flex: 1; position: sticky; top: 0; }
  #viewer video { width: 100%; background: #000; }
  #auth { display: none; background: #5a1d1d; color: #fff; padding: 10px 16px; }
  #auth a { color: #fc6; }
</style>
</head>
<body>
<header><h1>Sightline alerts</h1><a href="/live">live view</a><span id="status">loading…</span>
  <span id="who"></span></header>
<div id="auth" role="alert">Your session has ended or is not valid. <a href="/login">Log in again</a></div>
<form id="filters">
  <label>camera <select name="camera"><option value="">all</option></select></label>
  <label>type <select name="type"><option value="">all</option></select></label>
  <label>from <input type="datetime-local" name="since" step="1"></label>
  <label>to <input type="datetime-local" name="until" step="1"></label>
  <button type="submit">Apply</button>
</form>
<main>
  <ul id="alerts"></ul>
  <section id="viewer"><div id="caption">Click an alert to play its clip.</div>
    <video id="player" controls muted playsinline preload="auto"></video></section>
</main>
<script>
"use strict";
// Authorisation is the HttpOnly session cookie from /login (or none when reads are public).
const status = document.getElementById("status");
const list = document.getElementById("alerts");
const player = document.getElementById("player");
const form = document.getElementById("filters");
let canReview = false;
let selected = null;

function query() {
  const q = new URLSearchParams();
  for (const name of ["camera", "type"]) if (form[name].value) q.set(name, form[name].value);
  for (const name of ["since", "until"]) {
    if (form[name].value) q.set(name, String(new Date(form[name].value).getTime() / 1000));
  }
  q.set("limit", "200");
  return q.toString();
}

function fillSelect(select, values) {
  const have = new Set([...select.options].map(o => o.value));
  for (const v of values) if (!have.has(v)) select.add(new Option(v, v));
}

function verdictText(v) {
  if (!v) return "not reviewed";
  const what = v.verdict === "confirmed" ? "confirmed" : "false positive";
  return what + " by " + v.by + " · " + new Date(v.at_ns / 1e6).toLocaleString();
}

function row(item) {
  const a = item.alert;
  let li = list.querySelector('li[data-alert-id="' + a.alert_id + '"]');
  if (!li) {
    li = document.createElement("li");
    li.dataset.alertId = a.alert_id;
    li.innerHTML = '<div class="media"></div><div><div><b class="type"></b> · <span class="cam"></span>' +
      ' · <span class="severity"></span></div><div class="summary"></div><div class="when"></div>' +
      '<div><span class="verdict"></span></div><div class="actions">' +
      '<button class="confirm" type="button">Confirm</button>' +
      '<button class="false-positive" type="button">False positive</button></div></div>';
    li.querySelector(".type").textContent = a.type;
    li.querySelector(".cam").textContent = a.camera_id;
    li.querySelector(".severity").textContent = a.severity;
    li.querySelector(".summary").textContent = a.summary;
    li.querySelector(".when").textContent = new Date(a.created_ns / 1e6).toLocaleString() + " · " + a.rule;
    // The row outlives refreshes: a click opens what the latest refresh said about the alert.
    li.addEventListener("click", e => { if (!e.target.closest("button")) open(li, li.item); });
    li.querySelector(".confirm").addEventListener("click", () => judge(a.alert_id, "confirmed"));
    li.querySelector(".false-positive").addEventListener("click", () => judge(a.alert_id, "false_positive"));
  }
  li.item = item;
  li.className = a.severity + (selected === a.alert_id ? " selected" : "");
  li.dataset.evidence = item.evidence.status;
  li.dataset.clip = item.evidence.clip;
  const media = li.querySelector(".media");
  const snap = item.evidence.snapshot;
  if ((snap === "stored" || snap === "partial") && !media.querySelector("img")) {
    media.innerHTML = "";
    const img = document.createElement("img");
    img.className = "thumb";
    img.alt = "snapshot of " + a.type + " at " + a.camera_id;
    img.onload = () => { img.dataset.loaded = "1"; };
    img.src = "/v1/alerts/" + a.alert_id + "/snapshot.jpg";
    media.appendChild(img);
  } else if (!media.firstChild || (media.querySelector(".nothumb") && snap !== "stored")) {
    media.innerHTML = '<div class="nothumb"></div>';
    media.firstChild.textContent = snap === "missing" ? "no snapshot" : "evidence pending…";
  }
  const v = li.querySelector(".verdict");
  v.textContent = verdictText(item.verdict);
  v.className = "verdict " + (item.verdict ? item.verdict.verdict : "");
  li.dataset.verdict = item.verdict ? item.verdict.verdict : "";
  for (const b of li.querySelectorAll("button")) {
    b.disabled = !canReview;
    b.title = canReview ? "" : "log in with an admin or review token to give verdicts";
  }
  return li;
}

function open(li, item) {
  selected = item.alert.alert_id;
  for (const other of list.querySelectorAll("li.selected")) other.classList.remove("selected");
  li.classList.add("selected");
  const caption = document.getElementById("caption");
  caption.textContent = item.alert.summary;
  const clip = item.evidence.clip;
  if (clip !== "stored" && clip !== "partial") {
    caption.textContent += clip === "missing" ? " (no clip: its frames had expired)"
      : " (clip not ready yet)";
    player.removeAttribute("src");
    player.load();
    return;
  }
  player.dataset.alertId = selected;
  player.src = "/v1/alerts/" + selected + "/clip.mp4";
  player.play().catch(() => {});
}

async function judge(alertId, verdict) {
  const r = await fetch("/v1/alerts/" + alertId + "/verdict", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ verdict }), credentials: "same-origin",
  });
  if (r.status === 401) { authFailed(); return; }
  if (!r.ok) { status.textContent = "verdict not stored (HTTP " + r.status + ")"; return; }
  status.textContent = "verdict stored";
  refresh();
}

function authFailed() {
  status.textContent = "not logged in";
  document.getElementById("auth").style.display = "block";
}

async function refresh() {
  let r;
  try {
    r = await fetch("/v1/review/alerts?" + query(), { cache: "no-store" });
  } catch (e) { status.textContent = "server unreachable, retrying…"; return; }
  if (r.status === 401) { authFailed(); return; }
  if (!r.ok) { status.textContent = "HTTP " + r.status; return; }
  const body = await r.json();
  fillSelect(form.camera, body.cameras);
  fillSelect(form.type, body.types);
  const rows = body.alerts.map(row);
  const keep = new Set(rows);
  for (const li of [...list.children]) if (!keep.has(li)) li.remove();
  rows.forEach((li, i) => { if (list.children[i] !== li) list.insertBefore(li, list.children[i] || null); });
  status.textContent = body.total + " alert" + (body.total === 1 ? "" : "s");
  document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
}

async function start() {
  const r = await fetch("/v1/session", { cache: "no-store" });
  if (r.ok) {
    const s = await r.json();
    canReview = s.can_review;
    document.getElementById("who").textContent = s.who ? "signed in as " + s.who : "";
  }
  await refresh();
  setInterval(refresh, 3000);
}
form.addEventListener("submit", e => { e.preventDefault(); list.innerHTML = ""; refresh(); });
start();
</script>
</body>
</html>
"""
