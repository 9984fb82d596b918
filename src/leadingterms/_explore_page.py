"""The explorer page of :mod:`leadingterms.explore`: HTML, CSS and JS, all inline (no network, no server).

``render(meta, data)``: ``meta`` (JSON: vocabulary, π, views, steps, group index, byte layout) goes in a
``<script type="application/json">``; ``data`` (base64 of the gzip'd lists) in a
``<script type="text/plain">``; the script decompresses it with ``DecompressionStream``, then draws a
token's card. Test hooks: ``body[data-ready]``, ``#search``, ``#suggest li``, ``#card h2``, ``ol[data-view]``
with ``li[data-token][data-value]``, ``input[name=norm]``, ``#step``.
"""

from __future__ import annotations

import html
import json
from typing import Any

CSS = """
* { box-sizing: border-box; }
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0; color: #1d2329;
       background: #f6f7f9; }
header { background: #fff; border-bottom: 1px solid #d0d7de; padding: 0.7em 1.5em; position: sticky; top: 0;
         z-index: 5; display: flex; flex-wrap: wrap; gap: 1.2em; align-items: center; }
header h1 { font-size: 1.1em; margin: 0; }
#searchbox { position: relative; }
#search { font-size: 1em; padding: 0.35em 0.6em; width: 16em; border: 1px solid #8c959f; border-radius: 6px; }
#suggest { position: absolute; top: 2.2em; left: 0; margin: 0; padding: 0; list-style: none; background: #fff;
           border: 1px solid #d0d7de; border-radius: 6px; min-width: 16em; max-height: 24em; overflow-y: auto;
           box-shadow: 0 4px 12px rgba(0,0,0,.12); }
#suggest:empty { display: none; }
#suggest li { padding: 0.25em 0.6em; cursor: pointer; font-family: ui-monospace, Menlo, monospace; }
#suggest li.active, #suggest li:hover { background: #ddf4ff; }
#suggest li small { color: #57606a; margin-left: 0.6em; }
fieldset { border: none; margin: 0; padding: 0; font-size: 0.92em; }
fieldset label { margin-right: 0.6em; cursor: pointer; }
#stepbox { font-size: 0.92em; }
#stepbox input { vertical-align: middle; width: 12em; }
main { padding: 1em 1.5em 3em; max-width: 1400px; }
#card h2 { font-family: ui-monospace, Menlo, monospace; font-size: 1.6em; margin: 0.2em 0; }
#card h2.section { font-family: inherit; }
.facts { color: #57606a; font-size: 0.9em; margin-bottom: 0.8em; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(250px, 1fr)); gap: 0.8em; }
.box { background: #fff; border: 1px solid #d0d7de; border-radius: 8px; padding: 0.5em 0.7em; }
.box h3 { font-size: 0.95em; margin: 0 0 0.1em; }
.box .sub { font-size: 0.78em; color: #57606a; margin-bottom: 0.3em; }
ol { margin: 0; padding-left: 2em; font-size: 0.86em; }
ol li { position: relative; line-height: 1.45; }
ol li .bar { position: absolute; left: 0; top: 0.15em; height: 1.1em; background: #ddf4ff; z-index: 0;
             border-radius: 2px; }
ol li .bar.neg { background: #ffebe9; }
ol li a, ol li .v { position: relative; z-index: 1; }
ol li a { font-family: ui-monospace, Menlo, monospace; color: #0b5cad; text-decoration: none; cursor: pointer; }
ol li a:hover { text-decoration: underline; }
ol li .v { float: right; color: #57606a; font-variant-numeric: tabular-nums; font-size: 0.92em; }
h2.section { font-size: 1.05em; margin: 1.4em 0 0.5em; border-bottom: 2px solid #d0d7de; }
.note { font-size: 0.85em; color: #57606a; }
.empty { color: #8c959f; font-style: italic; }
"""

JS = r"""
"use strict";
const META = JSON.parse(document.getElementById("lt-meta").textContent);
const V = META.V, K = META.layout.k, NONE = META.no_token;
const index = new Map(META.vocab.map((t, i) => [t, i]));
const lower = META.vocab.map(t => t.toLowerCase());
let IDS = null, SCALES = null, DIFFS = null, current = null, active = -1;

function half(h) {  // IEEE binary16 -> number
  const s = (h & 0x8000) ? -1 : 1, e = (h >> 10) & 0x1f, f = h & 0x3ff;
  if (e === 0) return s * Math.pow(2, -14) * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * Math.pow(2, e - 15) * (1 + f / 1024);
}

async function load() {
  const b64 = document.getElementById("lt-data").textContent.trim();
  const bin = atob(b64), bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  const u8 = new Uint8Array(await new Response(stream).arrayBuffer());
  const L = META.layout, n = L.lists, nk = n * K;  // byte planes: see leadingterms.explore.encode_lists
  IDS = new Uint16Array(nk);
  DIFFS = new Uint16Array(nk);
  for (let i = 0; i < nk; i++) {
    IDS[i] = u8[i] | (u8[nk + i] << 8);
    DIFFS[i] = u8[L.values + i] | (u8[L.values + nk + i] << 8);
  }
  const sc = new DataView(new ArrayBuffer(4 * n));
  for (let i = 0; i < n; i++)
    for (let b = 0; b < 4; b++) sc.setUint8(4 * i + b, u8[L.scales + b * n + i]);
  SCALES = new Float32Array(n);
  for (let i = 0; i < n; i++) SCALES[i] = sc.getFloat32(4 * i, true);
}

const GROUPS = new Map(META.groups.map(g => [g.key, g]));
function list(key, step, ranking, token) {  // -> [[id, value], ...], largest first
  const g = GROUPS.get(key);
  const stored = ranking === "pmi" ? "freq" : ranking;
  const j = g.variants.findIndex(v => v[0] === step && v[1] === stored);
  const slot = g.base + token * g.variants.length + j, scale = SCALES[slot];
  const out = [];
  let code = 0xFFFF;
  for (let r = 0; r < K; r++) {
    const id = IDS[slot * K + r];
    code -= DIFFS[slot * K + r];
    if (id === NONE) break;
    let v = half(code & 0x8000 ? code & 0x7FFF : ~code & 0xFFFF) * scale;
    if (ranking === "pmi") v /= META.pi[token];
    out.push([id, v]);
  }
  return out;
}

function fmt(v) {
  if (!isFinite(v)) return String(v);
  const a = Math.abs(v);
  return (a !== 0 && (a < 1e-3 || a >= 1e4)) ? v.toExponential(2) : v.toPrecision(3);
}

function shown(t) { return JSON.stringify(t).slice(1, -1); }  // "\n" and other controls visible

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "text") e.textContent = v; else e.setAttribute(k, v);
  }
  for (const c of kids) if (c) e.appendChild(c);
  return e;
}

function box(title, sub, key, step, ranking, token) {
  const items = list(key, step, ranking, token);
  const ol = el("ol", {"data-view": key});
  const top = Math.max(...items.map(x => Math.abs(x[1])), 0) || 1;
  for (const [id, v] of items) {
    const li = el("li", {"data-token": META.vocab[id], "data-value": String(v)});
    li.appendChild(el("span", {class: "bar" + (v < 0 ? " neg" : ""),
                               style: "width:" + (100 * Math.abs(v) / top).toFixed(1) + "%"}));
    li.appendChild(el("a", {href: "#" + encodeURIComponent(META.vocab[id]), text: shown(META.vocab[id])}));
    li.appendChild(el("span", {class: "v", text: fmt(v)}));
    ol.appendChild(li);
  }
  if (!items.length) ol.appendChild(el("li", {class: "empty", text: "(undefined: π = 0)"}));
  return el("div", {class: "box"}, el("h3", {text: title}), el("div", {class: "sub", text: sub}), ol);
}

function ranking() { return document.querySelector("input[name=norm]:checked").value; }
function step() { return META.steps.length ? META.steps[+document.getElementById("step").value] : null; }

function show(token) {
  current = token;
  const card = document.getElementById("card");
  card.replaceChildren();
  const rk = ranking(), pi = META.pi[token];
  card.appendChild(el("h2", {text: shown(META.vocab[token])}));
  const undef = rk === "pmi" && pi === 0 ? " (undefined: π = 0)" : "";
  card.appendChild(el("div", {class: "facts", text: "id " + token + " · π = " + fmt(pi) +
      " (frequency as current token) · normalisation: " + rk + undef}));
  if (rk === "pmi" && pi === 0) return;
  card.appendChild(el("h2", {class: "section", text: "Corpus statistics (basis functions)"}));
  const grid = el("div", {class: "grid"});
  for (const v of META.views) {
    grid.appendChild(box(v.caption, v.name + " " + v.symbol + " · " + v.direction + " of this " + v.index +
                         (v.exclude_self ? " · itself left out" : ""), v.key, null, rk, token));
  }
  card.appendChild(grid);
  if (META.steps.length) {
    const s = step();
    for (let layer = -1; layer < META.layers; layer++) {
      const views = META.learned.filter(x => (x.layer === undefined || x.layer === null ? -1 : x.layer) === layer);
      if (!views.length) continue;
      card.appendChild(el("h2", {class: "section", text: "Learned weights at step " + s +
                                 (layer < 0 ? " (output)" : " — layer " + layer)}));
      const g = el("div", {class: "grid"});
      for (const x of views) g.appendChild(box(x.caption, x.name + " · row of this token", x.key, s, rk, token));
      card.appendChild(g);
    }
  }
}

function go(token) {
  const name = META.vocab[token];
  if (decodeURIComponent(location.hash.slice(1)) !== name) location.hash = encodeURIComponent(name);
  else show(token);
  document.getElementById("suggest").replaceChildren();
}

function suggest() {
  const q = document.getElementById("search").value.toLowerCase(), ul = document.getElementById("suggest");
  ul.replaceChildren();
  active = -1;
  if (!q) return;
  const pre = [], sub = [];
  for (let i = 0; i < V && pre.length < 12; i++) if (lower[i].startsWith(q)) pre.push(i);
  for (let i = 0; i < V && pre.length + sub.length < 12; i++)
    if (!lower[i].startsWith(q) && lower[i].includes(q)) sub.push(i);
  for (const i of pre.concat(sub)) {
    const li = el("li", {"data-id": String(i), text: shown(META.vocab[i])});
    li.appendChild(el("small", {text: "π " + fmt(META.pi[i])}));
    li.addEventListener("mousedown", ev => { ev.preventDefault(); go(i); });
    ul.appendChild(li);
  }
}

function keys(ev) {
  const items = [...document.querySelectorAll("#suggest li")];
  if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
    ev.preventDefault();
    if (!items.length) return;
    active = (active + (ev.key === "ArrowDown" ? 1 : items.length - 1)) % items.length;
    items.forEach((li, i) => li.classList.toggle("active", i === active));
  } else if (ev.key === "Enter") {
    const exact = index.get(ev.target.value);
    if (active >= 0 && items[active]) go(+items[active].dataset.id);
    else if (exact !== undefined) go(exact);
    else if (items.length) go(+items[0].dataset.id);
  } else if (ev.key === "Escape") {
    document.getElementById("suggest").replaceChildren();
  }
}

function fromHash() {
  const t = index.get(decodeURIComponent(location.hash.slice(1)));
  if (t !== undefined) show(t);
}

async function main() {
  document.getElementById("status").textContent = "decompressing…";
  await load();
  const sb = document.getElementById("stepbox");
  if (META.steps.length) {
    const r = document.getElementById("step");
    r.max = String(META.steps.length - 1);
    r.value = String(META.steps.length - 1);
    const label = () => { document.getElementById("steplabel").textContent = "step " + step(); };
    label();
    r.addEventListener("input", () => { label(); if (current !== null) show(current); });
  } else sb.style.display = "none";
  document.getElementById("search").addEventListener("input", suggest);
  document.getElementById("search").addEventListener("keydown", keys);
  document.querySelectorAll("input[name=norm]").forEach(x => x.addEventListener("change", () => {
    if (current !== null) show(current);
  }));
  window.addEventListener("hashchange", fromHash);
  document.getElementById("status").textContent = V + " tokens · top-" + K;
  if (location.hash.length > 1) fromHash(); else show(0);
  document.body.dataset.ready = "1";
}
main().catch(e => { document.getElementById("status").textContent = "error: " + e; throw e; });
"""

BODY = """<header>
<h1>{title}</h1>
<div id="searchbox"><input id="search" type="search" placeholder="token…" autocomplete="off" spellcheck="false"
 aria-label="search a token"><ul id="suggest"></ul></div>
<fieldset><span>normalisation:</span>
<label><input type="radio" name="norm" value="none" checked> none</label>
<label><input type="radio" name="norm" value="freq"> freq</label>
<label><input type="radio" name="norm" value="pmi"> pmi</label>
<label><input type="radio" name="norm" value="centred"> centred</label></fieldset>
<div id="stepbox"><input id="step" type="range" min="0" max="0" value="0" aria-label="checkpoint">
 <span id="steplabel"></span></div>
<span id="status" class="note"></span>
</header>
<main><div id="card"></div>
<p class="note">Lists are the top-{k} entries of one row or column of each matrix (docs/theory.md §7.3), largest
first; click a token to open its card. Normalisations (7.4)–(7.7): <b>none</b> raw values; <b>freq</b> divided by
π of the listed token; <b>pmi</b> divided by π of both tokens; <b>centred</b> minus the mean row (column) of the
matrix. Values are stored to about 3 significant digits. Source: {source}.</p></main>"""


def _script_json(obj: Any) -> str:
    """JSON safe inside a <script> element (no ``</`` sequence)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")


def render(meta: dict[str, Any], data: str) -> str:
    """The page: ``meta`` as inline JSON, ``data`` (base64) as inline text, CSS and JS inline."""
    title = html.escape(str(meta["title"]))
    src = meta["source"]
    source = html.escape(", ".join(f"{k} {v}" for k, v in src.items() if v is not None))
    body = BODY.format(title=title, k=meta["k"], source=source)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{title}</title>"
            f"<style>{CSS}</style></head><body>\n{body}\n"
            f"<script id=\"lt-meta\" type=\"application/json\">{_script_json(meta)}</script>\n"
            f"<script id=\"lt-data\" type=\"text/plain\">{data}</script>\n"
            f"<script>{JS}</script>\n</body></html>\n")
