"""The rules editor page (`/live/rules/{camera}`): no build step, no external assets, like the
live view. An SVG over the camera's current frame, its viewBox the frame's size, so every point
drawn or dragged is in the frame's pixels whatever size the browser shows it at. The forms are
generated from the rules JSON Schema (`/v1/rules/schema`); every edit is checked by the validate
API and its messages shown next to the field they name. Saving and rolling back ride on the
admin session cookie (same-origin JSON), never on a token in a URL or in the page.
"""

# ruff: noqa: E501  (the page's HTML and JS: long lines there read better than Python wraps)

RULES_HTML = r"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Sightline rules</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body { font-family: system-ui, sans-serif; margin: 0; background: #111; color: #eee; font-size: 13px; }
  header { padding: 8px 16px; background: #222; display: flex; gap: 16px; align-items: baseline; }
  header a { color: #9cf; } h1 { font-size: 18px; margin: 0; }
  h2 { font-size: 14px; margin: 12px 0 6px; }
  #status { color: #9a9; } #who { color: #aaa; }
  main { display: flex; gap: 16px; padding: 16px; align-items: flex-start; }
  #left { flex: 3; min-width: 0; }
  #right { flex: 2; min-width: 360px; max-height: 92vh; overflow-y: auto; }
  #stage { position: relative; display: inline-block; max-width: 100%; background: #000; }
  #frame { display: block; max-width: 100%; max-height: 70vh; }
  #canvas { position: absolute; inset: 0; width: 100%; height: 100%; touch-action: none;
            cursor: crosshair; }
  .shape { fill: rgba(0, 200, 255, 0.15); stroke: #0cf; stroke-width: 2; vector-effect: non-scaling-stroke;
           cursor: move; }
  .shape.line { fill: none; stroke: #f0f; stroke-width: 3; }
  .shape.selected { stroke: #ff0; }
  .hit { stroke: transparent; stroke-width: 16; fill: none; vector-effect: non-scaling-stroke; cursor: move; }
  .handle { fill: #fff; stroke: #000; stroke-width: 1; vector-effect: non-scaling-stroke; cursor: grab; }
  .label { fill: #fff; paint-order: stroke; stroke: #000; stroke-width: 3px; font-size: 14px;
           pointer-events: none; }
  .arrow { stroke: #f0f; stroke-width: 2; vector-effect: non-scaling-stroke; fill: none;
           pointer-events: none; }
  .tools { display: flex; gap: 6px; flex-wrap: wrap; align-items: center; margin: 8px 0; }
  button { font-size: 12px; }
  fieldset { border: 1px solid #333; margin: 6px 0; padding: 6px 8px; }
  fieldset.selected { border-color: #ff0; }
  legend { color: #9cf; }
  .field { display: grid; grid-template-columns: 140px 1fr; gap: 6px; align-items: center; margin: 3px 0; }
  .field input[type=text], .field input[type=number], .field select, .field textarea { width: 100%;
           box-sizing: border-box; background: #1c1c1c; color: #eee; border: 1px solid #444; }
  .field .coords { color: #aaa; font-family: monospace; font-size: 11px; word-break: break-all; }
  .err { color: #f77; grid-column: 2; font-size: 12px; }
  .err:empty { display: none; }
  input.invalid, select.invalid, textarea.invalid { border-color: #e44 !important; }
  #try-results { display: flex; gap: 10px; }
  #try-results > div { flex: 1; min-width: 0; }
  .alerts { list-style: none; padding: 0; margin: 0; }
  .alerts li { background: #1c1c1c; margin-bottom: 4px; padding: 4px 6px; border-left: 4px solid #888;
               display: flex; gap: 6px; }
  .alerts li.only { border-color: #e0a030; }
  .alerts img { width: 96px; height: 64px; object-fit: contain; background: #000; }
  #history li { margin-bottom: 4px; } #history .in-force { color: #6d6; }
  pre { background: #1c1c1c; padding: 6px; overflow-x: auto; font-size: 11px; }
  #auth { display: none; background: #5a1d1d; color: #fff; padding: 10px 16px; }
  #auth a { color: #fc6; }
  .note { color: #aaa; }
</style>
</head>
<body>
<header><h1>Rules: <span id="camera"></span></h1><a href="/live">live view</a>
  <a href="/live/alerts">alerts</a><span id="version"></span><span id="status">loading…</span>
  <span id="who"></span></header>
<div id="auth" role="alert">Your session has ended or is not valid. <a href="/login">Log in again</a></div>
<main>
<section id="left">
  <div class="tools">
    <label>add <select id="add-kind"></select></label><button id="add" type="button">Draw</button>
    <button id="delete-shape" type="button" disabled>Delete shape</button>
    <button id="finish" type="button" style="display:none">Finish polygon</button>
    <button id="refresh-frame" type="button">Refresh frame</button>
    <span id="mode" class="note"></span>
  </div>
  <div id="stage"><img id="frame" alt="current frame">
    <svg id="canvas" xmlns="http://www.w3.org/2000/svg" preserveAspectRatio="none"></svg></div>
  <p class="note">Coordinates are the frame's pixels (<span id="frame-size">?</span>), origin top left.
    A line's arrow points to its "in" side (the right-hand side of start → end).</p>
  <h2>What would this have raised?</h2>
  <div class="tools"><label>last <input id="minutes" type="number" value="60" min="1" style="width:60px">
    minutes</label><button id="try" type="button">Try the draft</button><span id="try-status" class="note"></span></div>
  <div id="try-results">
    <div><h2>Draft (<span id="draft-count">–</span>)</h2><ul id="draft-alerts" class="alerts"></ul></div>
    <div><h2>Rules in force (<span id="live-count">–</span>)</h2><ul id="live-alerts" class="alerts"></ul></div>
  </div>
</section>
<section id="right">
  <div id="block-error" class="err"></div>
  <form id="rules-form" onsubmit="return false"></form>
  <h2>Save</h2>
  <div class="tools"><input id="comment" type="text" placeholder="comment (why)" style="flex:1">
    <button id="save" type="button">Save as new version</button></div>
  <div id="save-status" class="note"></div>
  <h2>History</h2>
  <ul id="history"></ul>
  <pre id="diff" style="display:none"></pre>
</section>
</main>
<script>
"use strict";
// Authorisation is the HttpOnly session cookie from /login: no token is ever in a URL or here.
const CAMERA = decodeURIComponent(location.pathname.split("/").pop());
const API = "/v1/cameras/" + encodeURIComponent(CAMERA) + "/rules";
const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);
const svg = $("canvas"), img = $("frame");
const editor = {
  schema: null, block: null, version: null, frame: null, role: null,
  selected: null,   // {path: [list, index, key]} of the selected shape
  mode: "select",   // select | line | polygon
  drawing: null,    // the shape being drawn: {target, points}
  errors: [], valid: true, validated: 0,
};
window.editor = editor;

function authFailed() {
  $("status").textContent = "not logged in";
  $("auth").style.display = "block";
}

async function call(method, url, body) {
  const init = { method, cache: "no-store", credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const r = await fetch(url, init);
  if (r.status === 401) authFailed();
  let data = null;
  try { data = await r.json(); } catch (e) { data = null; }
  return { ok: r.ok, status: r.status, data };
}

// -- schema helpers ---------------------------------------------------------------------------
function resolve(s) {
  if (s && s.$ref) return editor.schema.$defs[s.$ref.split("/").pop()];
  return s || {};
}
function nullable(s) {  // anyOf [X, null] -> [X, true]
  if (s && s.anyOf) {
    const rest = s.anyOf.filter(o => o.type !== "null");
    if (rest.length === 1) return [{ ...resolve(rest[0]), default: s.default, description: s.description }, true];
  }
  return [resolve(s), false];
}
function isPoint(s) { return s.type === "array" && Array.isArray(s.prefixItems) && s.prefixItems.length === 2; }
function isPolygon(s) { return s.type === "array" && s.items && isPoint(resolve(s.items)); }
function isLine(s) { return s.type === "object" && s.properties && s.properties.start && s.properties.end; }
function ruleLists() {  // camera block properties that are lists of named rules
  const out = [];
  for (const [key, s] of Object.entries(editor.schema.properties)) {
    const item = s.type === "array" && s.items ? resolve(s.items) : null;
    if (item && item.properties && item.properties.name) out.push([key, item]);
  }
  return out;
}
function geometryKeys(ruleSchema) {  // [[key, "line"|"polygon"], ...]
  const out = [];
  for (const [key, p] of Object.entries(ruleSchema.properties)) {
    const [s] = nullable(p);
    if (isLine(s)) out.push([key, "line"]);
    else if (isPolygon(s)) out.push([key, "polygon"]);
  }
  return out;
}
function initial(s) {  // a value for a required field the user has still to fill in
  if (s.default !== undefined) return structuredClone(s.default);
  if (s.enum) return s.enum[0];
  if (s.const !== undefined) return s.const;
  if (s.type === "array") return [];
  if (s.type === "number" || s.type === "integer") return 0;
  if (s.type === "boolean") return false;
  return "";
}

// -- paths into the block -------------------------------------------------------------------
function getAt(path) { return path.reduce((o, k) => (o == null ? undefined : o[k]), editor.block); }
function setAt(path, value) {
  let o = editor.block;
  for (const k of path.slice(0, -1)) o = o[k];
  const last = path[path.length - 1];
  if (value === undefined) delete o[last]; else o[last] = value;
}

// -- the canvas -------------------------------------------------------------------------------
function toFrame(e) {  // a pointer event -> frame pixels (integers, clamped to the frame)
  const pt = svg.createSVGPoint();
  pt.x = e.clientX; pt.y = e.clientY;
  const p = pt.matrixTransform(svg.getScreenCTM().inverse());
  const W = editor.frame.width, H = editor.frame.height;
  return [Math.round(Math.min(W, Math.max(0, p.x))), Math.round(Math.min(H, Math.max(0, p.y)))];
}
function shapes() {  // every drawn shape of the block: {path, kind, name, points}
  const out = [];
  for (const [list, ruleSchema] of ruleLists()) {
    (editor.block[list] || []).forEach((rule, i) => {
      for (const [key, kind] of geometryKeys(ruleSchema)) {
        const g = rule[key];
        if (!g) continue;
        const points = kind === "line" ? [g.start, g.end] : g;
        out.push({ path: [list, i, key], kind, name: rule.name, points, line: kind === "line" ? g : null });
      }
    });
  }
  return out;
}
function el(name, attrs, parent) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}
const same = (a, b) => a && b && a.join("/") === b.join("/");

function draw() {
  svg.innerHTML = "";
  if (!editor.frame) return;
  const r = Math.max(editor.frame.width, editor.frame.height) / 120;  // handles ~1% of the frame
  for (const s of shapes()) {
    const sel = editor.selected && same(editor.selected.path, s.path);
    const g = el("g", { "data-path": s.path.join("."), "data-kind": s.kind, "data-name": s.name }, svg);
    const pts = s.points.map(p => p.join(",")).join(" ");
    const tag = s.kind === "line" ? "polyline" : "polygon";
    el(tag, { points: pts, class: "hit" }, g);
    el(tag, { points: pts, class: "shape " + s.kind + (sel ? " selected" : "") }, g);
    if (s.kind === "line") lineArrows(g, s.points, s.line.direction || "any");
    const t = el("text", { x: s.points[0][0] + r, y: s.points[0][1] - r, class: "label name" }, g);
    t.textContent = s.name + (s.kind === "line" ? " (" + (s.line.direction || "any") + ")" : "");
    s.points.forEach((p, i) => {
      el("circle", { cx: p[0], cy: p[1], r, class: "handle", "data-index": i }, g);
    });
    g.addEventListener("pointerdown", e => startDrag(e, s));
  }
  if (editor.drawing && editor.drawing.points.length) {
    const p = editor.drawing.points;
    el("polyline", { points: p.map(q => q.join(",")).join(" "), class: "shape " +
      (editor.mode === "line" ? "line" : ""), style: "fill:none" }, svg);
    for (const q of p) el("circle", { cx: q[0], cy: q[1], r, class: "handle" }, svg);
  }
  $("delete-shape").disabled = !editor.selected;
}

function lineArrows(g, [a, b], direction) {
  // The "in" side is the right-hand side of start -> end as drawn on the image (y down).
  const dx = b[0] - a[0], dy = b[1] - a[1], len = Math.hypot(dx, dy) || 1;
  const nx = -dy / len, ny = dx / len;  // right-hand normal in image coordinates
  const mx = (a[0] + b[0]) / 2, my = (a[1] + b[1]) / 2, k = Math.min(60, len / 3);
  const tip = [mx + nx * k, my + ny * k];
  el("line", { x1: mx, y1: my, x2: tip[0], y2: tip[1], class: "arrow" }, g);
  const ux = nx, uy = ny, h = k / 3;  // arrow head
  el("polyline", { points: [[tip[0] - ux * h + uy * h, tip[1] - uy * h - ux * h], tip,
    [tip[0] - ux * h - uy * h, tip[1] - uy * h + ux * h]].map(p => p.join(",")).join(" "), class: "arrow" }, g);
  const t = el("text", { x: tip[0] + nx * 8, y: tip[1] + ny * 8, class: "label" }, g);
  t.textContent = direction === "any" ? "in (counts both)" : direction === "in" ? "in (counted)" : "in";
  el("circle", { cx: a[0], cy: a[1], r: 2, class: "arrow" }, g);
}

function writeShape(s, points) {
  if (s.kind === "line") {
    const line = getAt(s.path);
    line.start = points[0]; line.end = points[1];
  } else {
    setAt(s.path, points);
  }
}

function startDrag(e, s) {
  if (editor.mode !== "select") return;
  e.stopPropagation();
  e.preventDefault();
  select(s.path);
  const handle = e.target.classList.contains("handle") ? Number(e.target.dataset.index) : null;
  const from = toFrame(e), original = s.points.map(p => [...p]);
  svg.setPointerCapture(e.pointerId);
  const move = (ev) => {
    const at = toFrame(ev);
    let pts;
    if (handle !== null) {
      pts = original.map((p, i) => (i === handle ? at : p));
    } else {  // the whole shape, kept inside the frame
      const W = editor.frame.width, H = editor.frame.height;
      let dx = at[0] - from[0], dy = at[1] - from[1];
      dx = Math.max(-Math.min(...original.map(p => p[0])), Math.min(W - Math.max(...original.map(p => p[0])), dx));
      dy = Math.max(-Math.min(...original.map(p => p[1])), Math.min(H - Math.max(...original.map(p => p[1])), dy));
      pts = original.map(p => [p[0] + dx, p[1] + dy]);
    }
    writeShape(s, pts);
    draw();
  };
  const up = () => {
    svg.removeEventListener("pointermove", move);
    svg.removeEventListener("pointerup", up);
    renderForm();
    changed();
  };
  svg.addEventListener("pointermove", move);
  svg.addEventListener("pointerup", up);
}

function select(path) {
  editor.selected = path ? { path } : null;
  draw();
  for (const f of document.querySelectorAll("fieldset.rule")) {
    f.classList.toggle("selected", !!path && f.dataset.path === path.slice(0, 2).join("."));
  }
}

// Drawing: "line" is press, drag, release; "polygon" is one click per point, then Finish
// (or a click on the first point, or Enter); Escape cancels.
svg.addEventListener("pointerdown", e => {
  if (editor.mode === "select") { select(null); return; }
  const p = toFrame(e);
  const d = editor.drawing;
  if (editor.mode === "line") {
    d.points = [p, p];
    svg.setPointerCapture(e.pointerId);
    const move = (ev) => { d.points[1] = toFrame(ev); draw(); };
    const up = () => {
      svg.removeEventListener("pointermove", move);
      svg.removeEventListener("pointerup", up);
      const [a, b] = d.points;
      if (Math.hypot(a[0] - b[0], a[1] - b[1]) < 3) { d.points = []; draw(); return; }
      finishDrawing();
    };
    svg.addEventListener("pointermove", move);
    svg.addEventListener("pointerup", up);
  } else {
    const first = d.points[0];
    const r = Math.max(editor.frame.width, editor.frame.height) / 80;
    if (first && d.points.length >= 3 && Math.hypot(first[0] - p[0], first[1] - p[1]) < r) finishDrawing();
    else { d.points.push(p); draw(); }
  }
});
document.addEventListener("keydown", e => {
  if (editor.mode === "select") {
    if ((e.key === "Delete" || e.key === "Backspace") && editor.selected && e.target === document.body) deleteShape();
    return;
  }
  if (e.key === "Escape") setMode("select");
  if (e.key === "Enter" && editor.mode === "polygon" && editor.drawing.points.length >= 3) finishDrawing();
});

function setMode(mode, target) {
  editor.mode = mode;
  editor.drawing = mode === "select" ? null : { target, points: [] };
  $("finish").style.display = mode === "polygon" ? "" : "none";
  $("mode").textContent = mode === "line" ? "press, drag and release to draw the line (Esc cancels)"
    : mode === "polygon" ? "click each corner, then Finish (Esc cancels)" : "";
  draw();
}

function finishDrawing() {
  const { target, points } = editor.drawing;
  if (editor.mode === "polygon" && points.length < 3) return;
  let [list, index, key] = target;
  if (index === null) {  // a new rule of this kind, named for the user to rename
    const ruleSchema = ruleLists().find(([l]) => l === list)[1];
    const rule = { name: freeName(list) };
    for (const req of ruleSchema.required || []) {
      if (!(req in rule)) rule[req] = initial(nullable(ruleSchema.properties[req])[0]);
    }
    editor.block[list] = editor.block[list] || [];
    editor.block[list].push(rule);
    index = editor.block[list].length - 1;
  }
  const rule = editor.block[list][index];
  if (editor.mode === "line") {
    const prior = rule[key] || {};
    rule[key] = { ...prior, start: points[0], end: points[1] };
  } else {
    rule[key] = points;
  }
  setMode("select");
  select([list, index, key]);
  renderForm();
  changed();
}

function freeName(list) {
  const names = new Set(ruleLists().flatMap(([l]) => (editor.block[l] || []).map(r => r.name)));
  const stem = list.replace(/s$/, "").replace(/_/g, "-");
  for (let i = 1; ; i++) if (!names.has(stem + "-" + i)) return stem + "-" + i;
}

function deleteShape() {
  if (!editor.selected) return;
  setAt(editor.selected.path, null);
  select(null);
  renderForm();
  changed();
}

function fillAddKinds() {
  const select = $("add-kind");
  select.innerHTML = "";
  for (const [list, ruleSchema] of ruleLists()) {
    for (const [key, kind] of geometryKeys(ruleSchema)) {
      const label = list + ": " + (kind === "line" ? "counting line" : key);
      select.add(new Option(label, [list, key, kind].join("|")));
    }
  }
}

// -- the form -------------------------------------------------------------------------------
function field(parent, label, path, schema, value, optional) {
  const row = document.createElement("div");
  row.className = "field";
  const name = document.createElement("label");
  name.textContent = label;
  if (schema.description) name.title = schema.description;
  row.appendChild(name);
  let input;
  const p = path.join(".");
  const store = (v) => { setAt(path, v); changed(); };
  if (schema.enum) {
    input = document.createElement("select");
    if (optional) input.add(new Option("(default)", ""));
    for (const v of schema.enum) input.add(new Option(String(v), String(v)));
    input.value = value === undefined || value === null ? "" : String(value);
    input.addEventListener("change", () => { store(input.value === "" ? undefined : input.value); draw(); });
  } else if (schema.type === "boolean") {
    input = document.createElement("input");
    input.type = "checkbox";
    input.checked = value === undefined ? !!schema.default : !!value;
    input.addEventListener("change", () => store(input.checked));
  } else if (schema.type === "number" || schema.type === "integer") {
    input = document.createElement("input");
    input.type = "text";
    input.inputMode = "decimal";
    input.value = value === undefined || value === null ? "" : String(value);
    input.placeholder = schema.default !== undefined && schema.default !== null ? String(schema.default) : "";
    input.addEventListener("input", () => {
      const t = input.value.trim();
      // Not a number: sent as typed, so the validator's own message says what is wrong.
      store(t === "" ? (optional ? undefined : null) : (t !== "" && !isNaN(Number(t)) ? Number(t) : t));
    });
  } else if (schema.type === "array" && (resolve(schema.items).type === "string")) {
    input = document.createElement("input");
    input.type = "text";
    input.placeholder = "comma-separated" + (resolve(schema.items).enum ? ": " + resolve(schema.items).enum.join(", ") : "");
    input.value = Array.isArray(value) ? value.join(", ") : "";
    input.addEventListener("input", () => {
      const items = input.value.split(",").map(s => s.trim()).filter(Boolean);
      store(items.length || !optional ? items : undefined);
    });
  } else if (schema.type === "string") {
    input = document.createElement("input");
    input.type = "text";
    input.value = value == null ? "" : String(value);
    input.addEventListener("input", () => {
      store(input.value === "" && optional ? undefined : input.value);
      if (label === "name") draw();
    });
  } else {  // anything else (lists of objects): JSON, parsed here, checked by the validator
    input = document.createElement("textarea");
    input.rows = 2;
    input.value = value === undefined ? "" : JSON.stringify(value);
    input.addEventListener("input", () => {
      const t = input.value.trim();
      if (t === "") { input.classList.remove("invalid"); store(undefined); return; }
      try { const v = JSON.parse(t); input.classList.remove("invalid"); store(v); }
      catch (e) { input.classList.add("invalid"); row.querySelector(".err").textContent = "not valid JSON"; }
    });
  }
  input.name = p;
  input.dataset.path = p;
  row.appendChild(input);
  const err = document.createElement("div");
  err.className = "err";
  err.dataset.for = p;
  row.appendChild(err);
  parent.appendChild(row);
}

function fields(parent, schema, obj, path) {
  const required = new Set(schema.required || []);
  for (const [key, raw] of Object.entries(schema.properties)) {
    const [s, isNull] = nullable(raw);
    const here = [...path, key];
    const value = obj[key];
    const optional = !required.has(key);
    if (isLine(s) || isPolygon(s)) {
      geometryField(parent, key, here, s, value);
      if (isLine(s) && value) fields(lineBox(parent, here), { ...s, properties:
        Object.fromEntries(Object.entries(s.properties).filter(([k]) => k !== "start" && k !== "end")) }, value, here);
      continue;
    }
    if (s.type === "object" && s.properties) {  // an optional section: on or off
      const box = document.createElement("fieldset");
      const legend = document.createElement("legend");
      const on = document.createElement("input");
      on.type = "checkbox";
      on.checked = value != null;
      on.dataset.path = here.join(".") + ".enabled";
      on.addEventListener("change", () => {
        setAt(here, on.checked ? {} : (isNull ? null : undefined));
        renderForm(); changed();
      });
      legend.append(on, " " + key);
      box.appendChild(legend);
      const err = document.createElement("div");
      err.className = "err";
      err.dataset.for = here.join(".");
      box.appendChild(err);
      if (value != null) fields(box, s, value, here);
      parent.appendChild(box);
      continue;
    }
    field(parent, key, here, s, value, optional || isNull);
  }
}

function lineBox(parent, path) {
  const box = document.createElement("div");
  box.style.marginLeft = "12px";
  parent.appendChild(box);
  return box;
}

function geometryField(parent, key, path, schema, value) {
  const row = document.createElement("div");
  row.className = "field";
  const label = document.createElement("label");
  label.textContent = key;
  const coords = document.createElement("div");
  coords.className = "coords";
  coords.dataset.path = path.join(".");
  if (value) {
    coords.textContent = isLine(schema) ? JSON.stringify([value.start, value.end]) : JSON.stringify(value);
    const pick = document.createElement("button");
    pick.type = "button"; pick.textContent = "select";
    pick.addEventListener("click", () => select(path));
    coords.append(" ", pick);
  } else {
    const drawIt = document.createElement("button");
    drawIt.type = "button";
    drawIt.textContent = "draw " + (isLine(schema) ? "line" : key);
    drawIt.className = "draw-" + key;
    drawIt.addEventListener("click", () => setMode(isLine(schema) ? "line" : "polygon", path));
    coords.appendChild(drawIt);
  }
  row.append(label, coords);
  const err = document.createElement("div");
  err.className = "err";
  err.dataset.for = path.join(".");
  row.appendChild(err);
  parent.appendChild(row);
}

function renderForm() {
  const form = $("rules-form");
  form.innerHTML = "";
  const camera = document.createElement("fieldset");
  camera.innerHTML = "<legend>camera</legend>";
  const top = { ...editor.schema, properties: Object.fromEntries(Object.entries(editor.schema.properties)
    .filter(([k]) => k !== "camera" && !ruleLists().some(([l]) => l === k))) };
  fields(camera, top, editor.block, []);
  form.appendChild(camera);
  for (const [list, ruleSchema] of ruleLists()) {
    const h = document.createElement("h2");
    h.textContent = list;
    form.appendChild(h);
    (editor.block[list] || []).forEach((rule, i) => {
      const box = document.createElement("fieldset");
      box.className = "rule";
      box.dataset.path = list + "." + i;
      box.dataset.name = rule.name;
      const legend = document.createElement("legend");
      legend.textContent = rule.name + " ";
      const del = document.createElement("button");
      del.type = "button"; del.textContent = "delete rule"; del.className = "delete-rule";
      del.addEventListener("click", () => {
        editor.block[list].splice(i, 1);
        select(null); renderForm(); changed();
      });
      legend.appendChild(del);
      box.appendChild(legend);
      const err = document.createElement("div");
      err.className = "err";
      err.dataset.for = list + "." + i;
      box.appendChild(err);
      fields(box, ruleSchema, rule, [list, i]);
      box.addEventListener("click", (e) => {
        if (e.target.tagName === "BUTTON") return;
        const geo = geometryKeys(ruleSchema).find(([k]) => rule[k]);
        if (geo) select([list, i, geo[0]]);
      });
      form.appendChild(box);
    });
  }
  showErrors();
}

// -- validation: every edit, debounced; each message next to the field its path names ---------
let timer = null;
function changed() {
  editor.valid = false;
  $("save").disabled = true;
  clearTimeout(timer);
  timer = setTimeout(validate, 250);
}

async function validate() {
  const sent = JSON.stringify(editor.block);
  const r = await call("POST", API + "/validate", { rules: editor.block });
  if (JSON.stringify(editor.block) !== sent) return;  // edited meanwhile: a newer check is due
  editor.errors = r.ok ? r.data.errors : [{ path: "", message: "validation failed (HTTP " + r.status + ")" }];
  editor.valid = r.ok && r.data.valid;
  editor.validated += 1;
  document.body.dataset.validated = String(editor.validated);
  document.body.dataset.valid = String(editor.valid);
  showErrors();
  $("save").disabled = !editor.valid || editor.role !== "admin";
}

function showErrors() {
  for (const e of document.querySelectorAll(".err")) e.textContent = "";
  for (const e of document.querySelectorAll(".invalid")) e.classList.remove("invalid");
  const spots = new Map([...document.querySelectorAll(".err")].map(e => [e.dataset.for, e]));
  for (const error of editor.errors) {
    // The nearest spot on the page: the field itself, else the section or rule that holds it.
    const parts = String(error.path || "").split(".").filter(s => s !== "");
    let spot = null;
    while (parts.length && !(spot = spots.get(parts.join(".")))) parts.pop();
    spot = spot || $("block-error");
    spot.textContent = (spot.textContent ? spot.textContent + "; " : "") + error.message;
    const input = document.querySelector('[data-path="' + parts.join(".") + '"]');
    if (input && input.tagName !== "DIV") input.classList.add("invalid");
  }
}

// -- try ------------------------------------------------------------------------------------
function alertItem(a, otherIds, i) {
  const li = document.createElement("li");
  li.dataset.alertId = a.alert_id;
  li.dataset.rule = a.rule;
  if (!otherIds.has(a.alert_id)) li.className = "only";
  // The signed snapshot URL when the evidence stage stored one; without URL signing configured,
  // the session's own snapshot URL for the first few (an alert without evidence drops its <img>).
  const snap = a.evidence_urls ? a.evidence_urls.snapshot
    : i < 40 ? "/v1/alerts/" + a.alert_id + "/snapshot.jpg" : null;
  if (snap) {
    const im = document.createElement("img");
    im.className = "thumb"; im.alt = "snapshot of " + a.type;
    im.onload = () => { im.dataset.loaded = "1"; };
    im.onerror = () => im.remove();
    im.src = snap;
    li.appendChild(im);
  }
  const text = document.createElement("div");
  text.innerHTML = '<b class="type"></b> · <span class="rule"></span><div class="summary"></div>' +
    '<div class="note when"></div>';
  text.querySelector(".type").textContent = a.type;
  text.querySelector(".rule").textContent = a.rule;
  text.querySelector(".summary").textContent = a.summary;
  text.querySelector(".when").textContent = new Date(a.capture_ns / 1e6).toLocaleTimeString() +
    (otherIds.has(a.alert_id) ? " · on both sides" : " · only here");
  li.appendChild(text);
  return li;
}

async function tryDraft() {
  $("try-status").textContent = "trying…";
  $("try").disabled = true;
  const minutes = Number($("minutes").value) || 60;
  const r = await call("POST", API + "/try", { rules: editor.block, minutes });
  $("try").disabled = false;
  if (!r.ok) {
    $("try-status").textContent = r.data && r.data.detail ? r.data.detail : "HTTP " + r.status;
    return;
  }
  const { draft, live } = r.data;
  const draftIds = new Set(draft.alerts.map(a => a.alert_id)), liveIds = new Set(live.alerts.map(a => a.alert_id));
  $("draft-alerts").replaceChildren(...draft.alerts.map((a, i) => alertItem(a, liveIds, i)));
  $("live-alerts").replaceChildren(...live.alerts.map((a, i) => alertItem(a, draftIds, i)));
  $("draft-count").textContent = draft.count;
  $("live-count").textContent = live.count + " · version " + r.data.live_version;
  $("try-status").textContent = r.data.records + " detection records of the last " + minutes + " min";
  document.body.dataset.tried = String(Number(document.body.dataset.tried || 0) + 1);
}

// -- save, history, rollback ------------------------------------------------------------------
async function save() {
  const r = await call("PUT", API, { rules: editor.block, comment: $("comment").value,
    base_version: editor.version });
  if (!r.ok) {
    $("save-status").textContent = r.data && r.data.detail ? r.data.detail : "not saved (HTTP " + r.status + ")";
    return;
  }
  $("save-status").textContent = "saved as version " + r.data.version;
  $("comment").value = "";
  await load();
}

async function rollback(to) {
  const r = await call("POST", "/v1/rules/rollback", { to, comment: $("comment").value });
  if (!r.ok) {
    $("save-status").textContent = r.data && r.data.detail ? r.data.detail : "HTTP " + r.status;
    return;
  }
  $("save-status").textContent = "version " + to + " is back in force as version " + r.data.version;
  await load();
}

async function showDiff(v) {
  const r = await call("GET", "/v1/rules/diff?new=" + v);
  const pre = $("diff");
  pre.style.display = "";
  pre.textContent = r.ok ? (r.data.diff || "(no difference)") + "\n" + JSON.stringify(r.data.changes, null, 1)
    : "HTTP " + r.status;
}

async function history() {
  const r = await call("GET", "/v1/rules");
  if (!r.ok) return;
  const list = $("history");
  list.innerHTML = "";
  const versions = [...r.data.versions].reverse();
  if (!versions.some(v => v.version === 0)) versions.push({ version: 0, comment: "the rules file",
    in_force: r.data.in_force === 0, author: "", created: "" });
  for (const v of versions) {
    const li = document.createElement("li");
    li.dataset.version = v.version;
    li.innerHTML = '<b></b> <span class="meta"></span> <span class="comment"></span> ';
    li.querySelector("b").textContent = "v" + v.version + (v.in_force ? " (in force)" : "");
    if (v.in_force) li.className = "in-force";
    li.querySelector(".meta").textContent = [v.author, v.created ? new Date(v.created).toLocaleString() : ""]
      .filter(Boolean).join(", ") + (v.copied_from !== null && v.copied_from !== undefined ? " · copy of v" + v.copied_from : "");
    li.querySelector(".comment").textContent = v.comment ? "— " + v.comment : "";
    if (v.version > 0) {
      const d = document.createElement("button");
      d.type = "button"; d.textContent = "diff"; d.className = "diff";
      d.addEventListener("click", () => showDiff(v.version));
      li.appendChild(d);
    }
    if (!v.in_force && r.data.in_force > 0) {
      const b = document.createElement("button");
      b.type = "button"; b.textContent = "roll back to this"; b.className = "rollback";
      b.disabled = editor.role !== "admin";
      b.addEventListener("click", () => rollback(v.version));
      li.appendChild(b);
    }
    list.appendChild(li);
  }
}

function refreshFrame() {
  img.src = "/v1/cameras/" + encodeURIComponent(CAMERA) + "/rules/frame.jpg?t=" + Date.now();
}
img.addEventListener("load", () => {
  img.dataset.loaded = "1";
  if (!editor.frame) editor.frame = { width: img.naturalWidth, height: img.naturalHeight };
  sizeCanvas();
});
img.addEventListener("error", () => { setTimeout(refreshFrame, 2000); });

function sizeCanvas() {
  if (!editor.frame) return;
  svg.setAttribute("viewBox", "0 0 " + editor.frame.width + " " + editor.frame.height);
  $("frame-size").textContent = editor.frame.width + " x " + editor.frame.height;
  draw();
}

async function load() {
  const r = await call("GET", API);
  if (!r.ok) { $("status").textContent = "HTTP " + r.status; return; }
  editor.version = r.data.version;
  editor.block = r.data.rules || { camera: CAMERA };
  if (r.data.frame) editor.frame = r.data.frame;
  $("version").textContent = "version " + r.data.version + " in force";
  document.body.dataset.version = String(r.data.version);
  select(null);
  sizeCanvas();
  renderForm();
  await history();
  await validate();
  $("status").textContent = editor.role === "admin" ? "editing" : "read only: log in as admin to save";
}

async function start() {
  $("camera").textContent = CAMERA;
  const who = await call("GET", "/v1/session");
  if (who.ok) {
    editor.role = who.data.role;
    $("who").textContent = who.data.who ? "signed in as " + who.data.who : "";
  }
  const schema = await call("GET", "/v1/rules/schema");
  if (!schema.ok) { $("status").textContent = "HTTP " + schema.status; return; }
  editor.schema = schema.data;
  fillAddKinds();
  refreshFrame();
  await load();
  document.body.dataset.ready = "1";
}

$("add").addEventListener("click", () => {
  const [list, key, kind] = $("add-kind").value.split("|");
  setMode(kind === "line" ? "line" : "polygon", [list, null, key]);
});
$("finish").addEventListener("click", finishDrawing);
$("delete-shape").addEventListener("click", deleteShape);
$("refresh-frame").addEventListener("click", refreshFrame);
$("try").addEventListener("click", tryDraft);
$("save").addEventListener("click", save);
start();
</script>
</body>
</html>
"""
