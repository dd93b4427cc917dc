"""The live view page: no build step, no external assets (works on an air-gapped network)."""

LIVE_HTML = """<!doctype html>
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
  .camera .meta { font-size: 13px; display: flex; gap: 12px; padding-top: 6px; flex-wrap: wrap; }
  .online { color: #6d6; } .offline { color: #e66; } .unknown { color: #aaa; }
  aside { flex: 1; min-width: 280px; }
  #alerts { list-style: none; padding: 0; margin: 0; font-size: 13px; max-height: 85vh; overflow-y: auto; }
  #alerts li { background: #1c1c1c; margin-bottom: 6px; padding: 6px 8px; border-left: 4px solid #888; }
  #alerts li.warning { border-color: #e0a030; } #alerts li.critical { border-color: #e04040; }
  #alerts li.info { border-color: #4080e0; }
  .when { color: #999; font-size: 11px; }
</style>
</head>
<body>
<header><h1>Sightline live view</h1><span id="status">connecting…</span></header>
<main>
  <section id="cameras"></section>
  <aside><h2 style="font-size:15px">Alerts</h2><ul id="alerts"></ul></aside>
</main>
<script>
"use strict";
// Authorisation is the HttpOnly session cookie from /login (or none when reads are public): the
// browser sends it with every same-origin request, so no token is ever put in a URL here.
const q = (extra) => {
  const s = new URLSearchParams(extra || {}).toString();
  return s ? "?" + s : "";
};
const cards = new Map();

function card(cam) {
  let c = cards.get(cam.camera_id);
  if (c) return c;
  const el = document.createElement("div");
  el.className = "camera";
  el.dataset.camera = cam.camera_id;
  el.innerHTML = '<img alt=""><div class="meta"><b class="name"></b><span class="state"></span>' +
    '<span class="fps"></span><span class="age"></span><span class="lag"></span></div>';
  el.querySelector(".name").textContent = cam.camera_id;
  document.getElementById("cameras").appendChild(el);
  const img = el.querySelector("img");
  img.alt = "latest frame of " + cam.camera_id;
  c = { el, img, loading: false };
  const refresh = () => {
    c.loading = true;
    img.src = "/v1/cameras/" + encodeURIComponent(cam.camera_id) + "/frame.jpg" + q({ t: Date.now() });
  };
  img.onload = () => { img.dataset.loaded = "1"; setTimeout(refresh, 400); };
  img.onerror = () => { setTimeout(refresh, 1500); };
  refresh();
  cards.set(cam.camera_id, c);
  return c;
}

function showCameras(list) {
  for (const cam of list) {
    const c = card(cam);
    const state = c.el.querySelector(".state");
    state.textContent = cam.online === null ? "?" : cam.online ? "online" : "offline";
    state.className = "state " + (cam.online === null ? "unknown" : cam.online ? "online" : "offline");
    c.el.querySelector(".fps").textContent = "in " + cam.fps_in + " fps / out " + cam.fps_out + " fps";
    c.el.querySelector(".age").textContent =
      cam.last_frame_age_s === null ? "" : "age " + cam.last_frame_age_s.toFixed(1) + " s";
    c.el.querySelector(".lag").textContent = cam.inference_lag === null ? "" : "lag " + cam.inference_lag;
  }
}

function showAlert(a) {
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

fetch("/v1/cameras" + q()).then(r => r.json()).then(d => showCameras(d.cameras)).catch(() => {});
const source = new EventSource("/v1/stream" + q());
const status = document.getElementById("status");
source.onopen = () => { status.textContent = "live"; };
source.onerror = () => {
  status.textContent = "reconnecting…";
  // An expired session makes every request 401: back to the login page instead of retrying forever.
  fetch("/v1/cameras").then(r => { if (r.status === 401) location.assign("/login"); }).catch(() => {});
};
source.addEventListener("cameras", e => showCameras(JSON.parse(e.data)));
source.addEventListener("alert", e => showAlert(JSON.parse(e.data)));
</script>
</body>
</html>
"""
