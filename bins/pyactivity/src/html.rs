//! The HTML report: one self-contained file (no network), the timeline on
//! a canvas with date and count (or byte) axes, linear or log, zoom (wheel,
//! buttons) and pan (drag), every group marked and labelled with its
//! busiest directories, and the files of a group listed on a click.
//!
//! The files of the shown groups are embedded once, in time order, as
//! columns (times, sizes, directory numbers, names); the page bins them for
//! the view it draws (binary search over the sorted times, prefix sums of
//! sizes), so a million files make a few hundred bars, never a million DOM
//! nodes. The file list shows 200 rows at a time.
//!
//! For tests and scripts the page keeps what it drew in `window.pyactivity`:
//! `drawn` (each visible group's number and its box on the canvas, in CSS
//! pixels), `listed` (the group listed) and `view`.

use std::collections::HashMap;
use std::path::PathBuf;

use activity::{Group, Records};

use crate::formats::csv_path;
use crate::Cli;

fn dir_and_name(p: &[u8]) -> (&[u8], &[u8]) {
    match p.iter().rposition(|&b| b == b'/') {
        Some(k) => (&p[..k], &p[k + 1..]),
        None => (&p[..0], p),
    }
}

/// A JSON string, safe inside a `<script>` element.
fn js_str(out: &mut String, s: &str) {
    let j = serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
    out.push_str(&j.replace("</", "<\\/"));
}

/// Appends `"name":[v,v,…]` for the values of `items`.
fn column<T>(out: &mut String, name: &str, items: impl Iterator<Item = T>, mut put: impl FnMut(&mut String, T)) {
    out.push('"');
    out.push_str(name);
    out.push_str("\":[");
    let mut first = true;
    for it in items {
        if !first {
            out.push(',');
        }
        first = false;
        put(out, it);
    }
    out.push(']');
}

/// The data the page draws, as JSON text written as it goes (a tree of
/// values for a million files would take gigabytes): groups, and the
/// columns of their files.
fn data(r: &Records, groups: &[Group], roots: &[PathBuf], cli: &Cli, now: i64) -> String {
    use std::fmt::Write;
    let mut shown: Vec<&Group> = groups.iter().collect();
    shown.sort_by_key(|g| g.start);
    let members = || shown.iter().flat_map(|g| g.members.clone());
    let mut dirs: Vec<&[u8]> = Vec::new();
    let mut dir_no: HashMap<&[u8], usize> = HashMap::new();
    let mut dir_of = Vec::with_capacity(members().count());
    for i in members() {
        let (d, _) = dir_and_name(r.get(i).2);
        let k = *dir_no.entry(d).or_insert_with(|| {
            dirs.push(d);
            dirs.len() - 1
        });
        dir_of.push(k);
    }
    let mut out = String::with_capacity(dir_of.len() * 40 + 4096);
    out.push('{');
    let title = roots.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
    let time = if cli.all_times { "all times (MACB)".to_string() } else { format!("{:?}", cli.time).to_lowercase() };
    for (k, v) in [("title", title), ("radius", humantime::format_duration(cli.radius).to_string()), ("time", time)] {
        let _ = write!(out, "\"{k}\":");
        js_str(&mut out, &v);
        out.push(',');
    }
    let _ = write!(out, "\"now\":{},\"groups\":[", now.div_euclid(1_000_000));
    let mut first = 0usize;
    for (n, g) in shown.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        let count = g.members.len();
        let _ = write!(
            out,
            "{{\"n\":{},\"start\":{},\"end\":{},\"files\":{},\"bytes\":{},\"first\":{first},\"count\":{count},\"dirs\":[",
            g.number,
            g.start.div_euclid(1_000_000),
            g.end.div_euclid(1_000_000),
            g.files,
            g.bytes
        );
        for (k, d) in g.top_dirs(r, 3).iter().enumerate() {
            if k > 0 {
                out.push(',');
            }
            out.push('[');
            js_str(&mut out, &csv_path(&d.dir));
            let _ = write!(out, ",{}]", d.files);
        }
        out.push_str("]}");
        first += count;
    }
    out.push_str("],");
    // Milliseconds: what JavaScript dates hold.
    column(&mut out, "t", members(), |o, i| {
        let _ = write!(o, "{}", r.get(i).0.div_euclid(1_000_000));
    });
    out.push(',');
    column(&mut out, "size", members(), |o, i| {
        let _ = write!(o, "{}", r.get(i).1);
    });
    out.push(',');
    column(&mut out, "dir", dir_of.iter(), |o, k| {
        let _ = write!(o, "{k}");
    });
    out.push(',');
    column(&mut out, "name", members(), |o, i| js_str(o, &csv_path(dir_and_name(r.get(i).2).1)));
    out.push(',');
    column(&mut out, "dirs", dirs.iter(), |o, d| js_str(o, &csv_path(d)));
    out.push(',');
    if cli.all_times {
        column(&mut out, "what", members(), |o, i| js_str(o, &String::from_utf8_lossy(&activity::macb(r.what(i)))));
    } else {
        out.push_str("\"what\":[]");
    }
    out.push('}');
    out
}

/// The whole page.
pub fn page(r: &Records, groups: &[Group], roots: &[PathBuf], cli: &Cli, now: i64) -> String {
    let (head, tail) = TEMPLATE.split_once("/*DATA*/null").unwrap_or((TEMPLATE, ""));
    let json = data(r, groups, roots, cli, now);
    let mut page = String::with_capacity(head.len() + json.len() + tail.len());
    page.push_str(head);
    page.push_str(&json);
    page.push_str(tail);
    page
}

const TEMPLATE: &str = r##"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>pyactivity</title>
<meta name="viewport" content="width=device-width">
<style>
body{font:14px sans-serif;margin:16px;color:#222}
#bar{margin:8px 0}#bar button,#bar select{margin-right:6px}
#chart{width:100%;height:360px;border:1px solid #ccc;cursor:grab;display:block}
table{border-collapse:collapse;margin-top:8px}td,th{padding:2px 8px;text-align:left;border-bottom:1px solid #eee}
td.num,th.num{text-align:right}tr.group{cursor:pointer}tr.group:hover,tr.sel{background:#eef4ff}
#files td{font-family:monospace;font-size:12px}#note{color:#666}
</style></head><body>
<h1 id="title">pyactivity</h1>
<div id="note"></div>
<div id="bar">
<button id="zin">zoom in</button><button id="zout">zoom out</button><button id="reset">whole period</button>
<select id="measure"><option value="files">files</option><option value="bytes">bytes</option></select>
<select id="scale"><option value="linear">linear</option><option value="log">log</option></select>
<span id="range"></span>
</div>
<canvas id="chart"></canvas>
<h2>Groups</h2><table id="groups"><thead><tr><th class="num">#</th><th>from</th><th>to</th><th class="num">files</th><th class="num">bytes</th><th>busiest directories</th></tr></thead><tbody></tbody></table>
<h2 id="fh">Files</h2><div id="fnote">Click a group (on the chart or in the table) to list its files.</div>
<table id="files"><thead><tr><th>time</th><th class="num">size</th><th>path</th></tr></thead><tbody></tbody></table>
<button id="more" style="display:none">more</button>
<script>
"use strict";
const D = /*DATA*/null;
const $ = (id) => document.getElementById(id);
const pyactivity = window.pyactivity = { drawn: [], listed: null, view: null };
const N = D.t.length;
const cum = new Float64Array(N + 1);
for (let i = 0; i < N; i++) cum[i + 1] = cum[i] + D.size[i];
const G = D.groups;
const t0 = G.length ? G[0].start : D.now, t1 = G.length ? G[G.length - 1].end : D.now;
const pad = Math.max(60000, (t1 - t0) * 0.03);
const whole = [t0 - pad, t1 + pad];
let view = whole.slice();
function human(b) { const u = ["B", "KiB", "MiB", "GiB", "TiB"]; let i = 0; while (b >= 1024 && i < 4) { b /= 1024; i++; } return (i ? b.toFixed(1) : b) + " " + u[i]; }
function iso(ms) { const d = new Date(ms); return isNaN(d) ? "(out of range)" : d.toISOString().replace("T", " ").replace(".000Z", "Z"); }
function lower(x) { let lo = 0, hi = N; while (lo < hi) { const m = (lo + hi) >> 1; if (D.t[m] < x) lo = m + 1; else hi = m; } return lo; }
const STEPS = [1e3, 5e3, 15e3, 6e4, 3e5, 9e5, 36e5, 108e5, 216e5, 864e5, 1728e5, 6048e5, 2592e6, 7776e6, 31536e6, 157680e6];
function nice(max, n, whole) {
  if (max <= 0) return [0];
  const raw = max / n, p = Math.pow(10, Math.floor(Math.log10(raw)));
  let step = [1, 2, 5, 10].map((m) => m * p).find((v) => v >= raw);
  if (whole) step = Math.max(1, Math.round(step));
  const out = []; for (let v = 0; v <= max * (1 + 1e-9); v += step) out.push(v); return out;
}
function dur(ms) { const s = ms / 1000; return s < 60 ? s.toFixed(s < 10 ? 1 : 0) + " s" : s < 3600 ? (s / 60).toFixed(1) + " min" : s < 86400 ? (s / 3600).toFixed(1) + " h" : (s / 86400).toFixed(1) + " d"; }
function ticks(a, b, n) { const step = STEPS.find((s) => (b - a) / s <= n) || STEPS[STEPS.length - 1]; const out = []; for (let x = Math.ceil(a / step) * step; x <= b; x += step) out.push(x); return [out, step]; }
function label(ms, step) { const s = iso(ms); return step >= 864e5 ? s.slice(0, 10) : step >= 6e4 ? s.slice(0, 16) : s.slice(0, 19); }
function draw() {
  const c = $("chart"), dpr = window.devicePixelRatio || 1;
  const W = c.clientWidth, H = c.clientHeight;
  c.width = W * dpr; c.height = H * dpr;
  const g = c.getContext("2d"); g.setTransform(dpr, 0, 0, dpr, 0, 0); g.clearRect(0, 0, W, H);
  const L = 70, R = 12, T = 36, B = 40, pw = W - L - R, ph = H - T - B;
  const bytes = $("measure").value === "bytes", log = $("scale").value === "log";
  const bins = Math.max(1, Math.min(400, Math.floor(pw / 3)));
  const [a, b] = view, bw = (b - a) / bins;
  const vals = new Float64Array(bins);
  let prev = lower(a);
  for (let k = 0; k < bins; k++) { const next = lower(a + (k + 1) * bw); vals[k] = bytes ? cum[next] - cum[prev] : next - prev; prev = next; }
  let max = 0; for (const v of vals) max = Math.max(max, v);
  const y = (v) => { if (v <= 0) return T + ph; const f = log ? Math.log10(1 + v) / Math.log10(1 + max) : v / max; return T + ph - f * ph; };
  const x = (ms) => L + (ms - a) / (b - a) * pw;
  pyactivity.drawn = [];
  g.font = "11px sans-serif";
  for (const gr of G) {
    if (gr.end < a || gr.start > b) continue;
    const x0 = Math.max(L, x(gr.start) - 1), x1 = Math.min(L + pw, Math.max(x(gr.end) + 1, x0 + 3));
    g.fillStyle = "rgba(255,170,0,0.22)"; g.fillRect(x0, T, x1 - x0, ph);
    pyactivity.drawn.push({ n: gr.n, x: x0, y: T, w: x1 - x0, h: ph });
  }
  g.fillStyle = "#3b7dd8";
  for (let k = 0; k < bins; k++) if (vals[k] > 0) { const yy = y(vals[k]); g.fillRect(L + k * pw / bins, yy, Math.max(1, pw / bins - 0.5), T + ph - yy); }
  g.fillStyle = "#7a4a00"; let lastLabel = -1e9;
  for (const d of pyactivity.drawn) {
    if (d.x < lastLabel) continue;
    const gr = G.find((q) => q.n === d.n), top = gr.dirs.length ? gr.dirs[0][0] || "." : "";
    const text = "#" + gr.n + " " + top.split("/").slice(-2).join("/");
    g.fillText(text, d.x + 2, T - 6); lastLabel = d.x + g.measureText(text).width + 8;
  }
  g.strokeStyle = "#000"; g.fillStyle = "#000"; g.beginPath(); g.moveTo(L, T); g.lineTo(L, T + ph); g.lineTo(L + pw, T + ph); g.stroke();
  const [xt, step] = ticks(a, b, Math.max(2, Math.floor(pw / 140)));
  g.textAlign = "center";
  for (const m of xt) { const xx = x(m); g.beginPath(); g.moveTo(xx, T + ph); g.lineTo(xx, T + ph + 4); g.stroke(); g.fillText(label(m, step), xx, T + ph + 16); }
  g.textAlign = "right";
  const yt = log ? [0, 1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12].filter((v) => v <= max) : nice(max, 5, !bytes);
  for (const v of yt) { const yy = y(v); g.beginPath(); g.moveTo(L - 4, yy); g.lineTo(L, yy); g.stroke(); g.fillText(bytes ? human(Math.round(v)) : String(Math.round(v)), L - 6, yy + 4); }
  g.textAlign = "left";
  g.fillText((bytes ? "bytes" : "files") + " per " + dur(bw) + (log ? " (log scale)" : ""), L, 12);
  $("range").textContent = iso(a) + " .. " + iso(b);
  pyactivity.view = { from: a, to: b, bins, max };
}
function zoom(f, at) { const [a, b] = view; const m = at === undefined ? (a + b) / 2 : at; const w = Math.max(1000, (b - a) * f); view = [m - (m - a) * w / (b - a), m + (b - m) * w / (b - a)]; draw(); }
function list(n, more) {
  const gr = G.find((q) => q.n === n); if (!gr) return;
  const body = $("files").tBodies[0];
  if (!more) { body.textContent = ""; pyactivity.listed = n; }
  const shown = body.rows.length, end = Math.min(gr.count, shown + 200);
  for (let i = gr.first + shown; i < gr.first + end; i++) {
    const tr = body.insertRow();
    tr.insertCell().textContent = iso(D.t[i]) + (D.what.length ? " " + D.what[i] : "");
    const s = tr.insertCell(); s.className = "num"; s.textContent = D.size[i];
    const d = D.dirs[D.dir[i]];
    tr.insertCell().textContent = (d ? d + "/" : "") + D.name[i];
  }
  $("fh").textContent = "Files of group #" + n + " (" + gr.count + ")";
  $("fnote").textContent = end < gr.count ? "showing " + end + " of " + gr.count : "";
  $("more").style.display = end < gr.count ? "" : "none";
  for (const tr of $("groups").tBodies[0].rows) tr.classList.toggle("sel", Number(tr.dataset.n) === n);
}
$("title").textContent = "pyactivity: " + D.title;
$("note").textContent = N + " files in " + G.length + " groups of activity (radius " + D.radius + ", " + D.time + ")";
for (const gr of G.slice().reverse()) {
  const tr = $("groups").tBodies[0].insertRow(); tr.className = "group"; tr.dataset.n = gr.n;
  for (const [v, cls] of [["#" + gr.n, "num"], [iso(gr.start), ""], [iso(gr.end), ""], [gr.files, "num"], [human(gr.bytes), "num"], [gr.dirs.map((d) => (d[0] || ".") + " (" + d[1] + ")").join(", "), ""]]) { const td = tr.insertCell(); td.textContent = v; td.className = cls; }
  tr.onclick = () => list(gr.n, false);
}
const c = $("chart"); let drag = null, moved = false;
c.addEventListener("wheel", (e) => { e.preventDefault(); const r = c.getBoundingClientRect(); const [a, b] = view; zoom(e.deltaY < 0 ? 0.8 : 1.25, a + (e.clientX - r.left - 70) / (r.width - 82) * (b - a)); }, { passive: false });
c.addEventListener("mousedown", (e) => { drag = { x: e.clientX, view: view.slice() }; moved = false; c.style.cursor = "grabbing"; });
window.addEventListener("mousemove", (e) => { if (!drag) return; const dx = e.clientX - drag.x; if (Math.abs(dx) > 3) moved = true; const r = c.getBoundingClientRect(); const [a, b] = drag.view; const s = dx / (r.width - 82) * (b - a); view = [a - s, b - s]; draw(); });
window.addEventListener("mouseup", () => { drag = null; c.style.cursor = "grab"; });
c.addEventListener("click", (e) => { if (moved) return; const r = c.getBoundingClientRect(); const px = e.clientX - r.left, py = e.clientY - r.top; const hit = pyactivity.drawn.find((d) => px >= d.x && px <= d.x + d.w && py >= d.y && py <= d.y + d.h); if (hit) list(hit.n, false); });
$("zin").onclick = () => zoom(0.5); $("zout").onclick = () => zoom(2); $("reset").onclick = () => { view = whole.slice(); draw(); };
$("measure").onchange = draw; $("scale").onchange = draw; window.onresize = draw;
$("more").onclick = () => list(pyactivity.listed, true);
draw();
</script></body></html>
"##;
