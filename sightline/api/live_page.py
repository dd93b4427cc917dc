"""The live view page: no build step, no external assets (works on an air-gapped network)."""

LIVE_HTML = r"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Sightline live view</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body { font-family: system-ui, sans-serif; margin: 0; background: #111; color: #eee; }
  header { padding: 8px 16px; background: #222; display: flex; gap: 16px; align-items: baseline; }
  h1 { font-size: 18px; margin: 0; }
  #status { color: #9a9; font-size: 13px; }
  main { display: flex; gap: 16px; padding: 16px; align-items: flex-start; }
  #cameras { flex: 3; display: grid; gap: 12px;
             grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); }
  .camera { background: #1c1c1c; border-radius: 6px; padding: 8px; }
  .camera img { width: 100%; display: block; background: #000; min-height: 120px; }
  .camera img:not([src]) { visibility: hidden; }
  .camera .meta { font-size: 13px; display: flex; gap: 12px; padding-top: 6px; flex-wrap: wrap; }
  .online { color: #6d6; } .offline { color: #e66; } .unknown { color: #aaa; }
  aside { flex: 1; min-width: 280px; }
  #alerts { list-style: none; padding: 0; margin: 0; font-size: 13px; max-height: 85vh; overflow-y: auto; }
  #alerts li { background: #1c1c1c; margin-bottom: 6px; padding: 6px 8px; border-left: 4px solid #888; }
  #alerts li.warning { border-color: #e0a030; } #alerts li.critical { border-color: #e04040; }
  #alerts li.info { border-color: #4080e0; }
  .when { color: #999; font-size: 11px; }
  #auth { display: none; background: #5a1d1d; color: #fff; padding: 10px 16px; }
  #auth a { color: #fc6; }
  .camera .note { color: #aaa; font-size: 12px; }
  .camera a.rules { color: #9cf; margin-left: auto; }
</style>
</head>
<body>
<header><h1>Sightline live view</h1><a href="/live/alerts" style="color:#9cf">alerts</a>
  <span id="status">connecting…</span></header>
<div id="auth" role="alert">Your session has ended or is not valid, so the live view stopped.
  <a href="/login">Log in again</a></div>
<main>
  <section id="cameras"></section>
  <aside><h2 style="font-size:15px">Alerts</h2><ul id="alerts"></ul></aside>
</main>
<script>
"use strict";
// Authorisation is the HttpOnly session cookie from /login (or none when reads are public): the
// browser sends it with every same-origin request, so no token is ever put in a URL here.
const status = document.getElementById("status");
const cards = new Map();
let stopped = false;
const sleep = (ms) => new Promise(r => setTimeout(r, ms));

function authFailed() {
  if (stopped) return;
  stopped = true;
  status.textContent = "not logged in";
  document.getElementById("auth").style.display = "block";
  if (source) source.close();
  for (const c of cards.values()) c.abort.abort();
}

// Each camera's frames come from stream.mjpg read with fetch (not <img src>): fetch sees a 401,
// and counting the parts gives the frame rate this page really shows.
function indexOfBlankLine(buf) {
  for (let i = 0; i + 3 < buf.length; i++) {
    if (buf[i] === 13 && buf[i + 1] === 10 && buf[i + 2] === 13 && buf[i + 3] === 10) return i;
  }
  return -1;
}

async function readParts(reader, onPart) {
  const text = new TextDecoder();
  let buf = new Uint8Array(0);
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    const joined = new Uint8Array(buf.length + value.length);
    joined.set(buf);
    joined.set(value, buf.length);
    buf = joined;
    for (;;) {  // at most one part plus one network chunk is ever held here
      const end = indexOfBlankLine(buf);
      if (end < 0) break;
      const head = text.decode(buf.subarray(0, end));
      const length = /content-length:\s*(\d+)/i.exec(head);
      if (!length) throw new Error("MJPEG part without Content-Length");
      const start = end + 4, stop = start + Number(length[1]);
      if (buf.length < stop) break;
      const seq = /x-frame-seq:\s*(\d+)/i.exec(head);
      const capture = /x-capture-ns:\s*(\d+)/i.exec(head);
      const captureMs = capture ? Number(capture[1]) / 1e6 : performance.now();
      onPart(buf.slice(start, stop), seq ? seq[1] : "", captureMs);
      buf = buf.slice(stop);
    }
  }
}

// The rate shown is frames shown per second of the camera's own time (capture timestamps over the
// last 5 s of video): a catch-up burst after a stall does not read as a faster camera, and frames
// this page skipped (slow network) do count as missing.
function showFrame(c, jpeg, seq, captureMs) {
  const url = URL.createObjectURL(new Blob([jpeg], { type: "image/jpeg" }));
  if (c.url) URL.revokeObjectURL(c.url);
  c.url = url;
  c.img.src = url;
  if (seq === c.seq) return;  // the same frame again (a reconnect starts with the last one)
  c.seq = seq;
  c.shown += 1;
  c.times.push(captureMs);
  while (c.times.length && c.times[0] < captureMs - 5000) c.times.shift();
  const n = c.times.length, span = (c.times[n - 1] - c.times[0]) / 1000;
  c.fps = n > 1 && span > 0 ? (n - 1) / span : 0;
  c.el.querySelector(".view").textContent = "showing " + c.fps.toFixed(1) + " fps";
  c.el.querySelector(".note").textContent = "";
}

async function play(c) {
  const url = "/v1/cameras/" + encodeURIComponent(c.id) + "/stream.mjpg";
  while (!stopped && cards.get(c.id) === c) {
    let response;
    try {
      response = await fetch(url, { cache: "no-store", signal: c.abort.signal });
    } catch (e) {
      if (c.abort.signal.aborted) return;
      c.el.querySelector(".note").textContent = "stream unreachable, retrying…";
      await sleep(2000);
      continue;
    }
    if (response.status === 401) { authFailed(); return; }
    if (!response.ok) {
      c.el.querySelector(".note").textContent = "no stream (HTTP " + response.status + "), retrying…";
      await sleep(2000);
      continue;
    }
    try {
      await readParts(response.body.getReader(), (jpeg, seq, at) => showFrame(c, jpeg, seq, at));
    } catch (e) {
      if (c.abort.signal.aborted) return;
      await sleep(500);
    }
    // The server ends each response after api.live_stream_max_s: reconnect (and recheck the session).
    await sleep(100);
  }
}

function card(cam) {
  let c = cards.get(cam.camera_id);
  if (c) return c;
  const el = document.createElement("div");
  el.className = "camera";
  el.dataset.camera = cam.camera_id;
  el.innerHTML = '<img alt=""><div class="meta"><b class="name"></b><span class="state"></span>' +
    '<span class="view"></span><span class="fps"></span><span class="age"></span>' +
    '<span class="behind"></span><span class="skipped"></span><span class="lag"></span>' +
    '<span class="note">waiting for frames…</span><a class="rules">rules</a></div>';
  el.querySelector(".name").textContent = cam.camera_id;
  el.querySelector(".rules").href = "/live/rules/" + encodeURIComponent(cam.camera_id);
  const img = el.querySelector("img");
  img.onload = () => { img.dataset.loaded = "1"; img.alt = "live frames of " + cam.camera_id; };
  c = { id: cam.camera_id, el, img, url: null, seq: null, times: [], shown: 0, fps: 0 };
  c.abort = new AbortController();
  cards.set(cam.camera_id, c);
  play(c);
  return c;
}

function showCameras(list) {
  const grid = document.getElementById("cameras");
  const shown = new Set(list.map(cam => cam.camera_id));
  for (const [id, c] of cards) {  // cameras the server no longer lists (unseen for long) go away
    if (shown.has(id)) continue;
    c.abort.abort();
    c.el.remove();
    cards.delete(id);
    if (c.url) URL.revokeObjectURL(c.url);
  }
  for (const cam of list) {  // in the server's order: configured cameras first
    const c = card(cam);
    grid.appendChild(c.el);
    const state = c.el.querySelector(".state");
    state.textContent = cam.online === null ? "?" : cam.online ? "online" : "offline";
    state.className = "state " + (cam.online === null ? "unknown" : cam.online ? "online" : "offline");
    c.el.querySelector(".fps").textContent =
      "camera " + cam.fps_in + " fps / detections " + cam.fps_out + " fps";
    c.el.querySelector(".age").textContent =
      cam.last_frame_age_s === null ? "" : "age " + cam.last_frame_age_s.toFixed(1) + " s";
    c.el.querySelector(".behind").textContent =
      cam.detections_age_s === null ? "" : "boxes " + cam.detections_age_s.toFixed(1) + " s behind";
    c.el.querySelector(".skipped").textContent = cam.skipped === 0 ? "" :
      "skipped " + cam.skipped + (cam.skipped_per_s > 0 ? " (" + cam.skipped_per_s + "/s)" : "");
    c.el.querySelector(".lag").textContent = cam.inference_lag === null ? "" : "lag " + cam.inference_lag;
  }
}

// An alert can reach the page twice (a backlog after a reconnect to another API process, a
// duplicate record): it is shown once per alert id.
const seenAlerts = new Set();
function showAlert(a) {
  if (seenAlerts.has(a.alert_id)) return;
  seenAlerts.add(a.alert_id);
  if (seenAlerts.size > 5000) seenAlerts.delete(seenAlerts.values().next().value);
  const li = document.createElement("li");
  li.className = "alert " + a.severity;
  li.dataset.alertId = a.alert_id;
  const when = new Date(a.created_ns / 1e6).toLocaleTimeString();
  li.innerHTML = '<div><b class="type"></b> · <span class="cam"></span></div>' +
    '<div class="summary"></div><div class="when"></div>';
  li.querySelector(".type").textContent = a.type;
  li.querySelector(".cam").textContent = a.camera_id;
  li.querySelector(".summary").textContent = a.summary;
  li.querySelector(".when").textContent = when + " · " + a.rule;
  const list = document.getElementById("alerts");
  list.insertBefore(li, list.firstChild);
  while (list.children.length > 200) list.removeChild(list.lastChild);
}

// EventSource reconnects by itself after a dropped or ended response, sending Last-Event-ID so the
// server goes on after the last alert seen. An error status (401) closes it for good instead.
let source = null;
let opens = 0;
function connect() {
  source = new EventSource("/v1/stream");
  source.onopen = () => {
    opens += 1;
    document.body.dataset.sseOpens = String(opens);
    status.textContent = "live";
  };
  source.onerror = () => {
    if (stopped) return;
    if (source.readyState !== EventSource.CLOSED) { status.textContent = "reconnecting…"; return; }
    fetch("/v1/cameras", { cache: "no-store" }).then(r => {
      if (r.status === 401) { authFailed(); return; }
      status.textContent = "reconnecting…";
      setTimeout(connect, 3000);
    }).catch(() => { status.textContent = "server unreachable, retrying…"; setTimeout(connect, 3000); });
  };
  source.addEventListener("cameras", e => showCameras(JSON.parse(e.data)));
  source.addEventListener("alert", e => showAlert(JSON.parse(e.data)));
}
connect();
</script>
</body>
</html>
"""
