"use strict";
// The box page (#/box/ID: live charts, exec history with replay, a file
// browser with upload and download, the file-watch feed) and the image
// cache (#/images: list, pull with progress). Loaded after the page's main
// script, whose helpers ($, api, esc, q, API, toast, boxes, statHist, ...)
// it uses; the main script reaches page, renderBoxPage, drawCharts and
// pullProgress only from callbacks that run after this file has loaded.

// page is the view shown: box is the box page's box ID (null elsewhere).
const page = { view: "list", box: null, dir: "", out: null, watch: null, files: 0 };

// route shows the view the location's hash names.
function route() {
  const h = location.hash.replace(/^#\/?/, "");
  const m = /^box\/(.+)$/.exec(h);
  const view = m ? "box" : h === "images" ? "images" : "list";
  const box = m ? decodeURIComponent(m[1]) : null;
  if (page.box !== box) leaveBoxPage();
  page.view = view;
  for (const v of ["list", "box", "images"]) $("view-" + v).hidden = v !== view;
  $("nav-boxes").classList.toggle("cur", view !== "images");
  $("nav-images").classList.toggle("cur", view === "images");
  if (view === "box") enterBoxPage(box);
  if (view === "images") loadImageCache();
  window.scrollTo(0, 0);
}

function leaveBoxPage() {
  if (page.out) { page.out.close(); page.out = null; }
  stopWatch();
  page.box = null;
}

function enterBoxPage(id) {
  if (page.box === id) return;
  page.box = id;
  page.dir = "";
  $("bp-output").textContent = "";
  $("bp-execs").textContent = "Loading…";
  $("bp-watch-feed").textContent = "";
  $("bp-files").innerHTML = "";
  renderBoxPage();
  drawCharts();
  loadBoxExecs();
}

function curBox() { return boxes.find((b) => b.id === page.box); }

// renderBoxPage fills the box's header; called on every refresh.
function renderBoxPage() {
  const b = curBox();
  if (!b) {
    $("bp-title").textContent = page.box;
    $("bp-status").innerHTML = '<span class="badge">not found</span>';
    $("bp-info").textContent = ""; $("bp-actions").innerHTML = "";
    return;
  }
  $("bp-title").textContent = b.name || b.id;
  const why = b.status === "error" && b.error_message ? ` <span class="errmsg">${esc(b.error_message)}</span>` : "";
  $("bp-status").innerHTML = `<span class="badge ${esc(b.status)}">${esc(b.status)}</span>${why}`;
  const info = `<span>ID <b>${esc(b.id)}</b></span><span>image <b>${esc(b.image)}</b></span>` +
    `<span>CPU <b>${b.cpu}</b></span><span>memory <b>${b.memory_mb} MB</b></span><span>disk <b>${b.disk_size_gb} GB</b></span>` +
    `<span>created <b>${esc(String(b.created_at).slice(0, 19))}</b></span>`;
  if ($("bp-info").innerHTML !== info) $("bp-info").innerHTML = info;
  const acts = (b.status === "running" ? `<button data-act="stop">Stop</button> <button data-act="term">Terminal</button> ` : "") +
    (b.status === "stopped" ? `<button data-act="start">Start</button> ` : "") + `<button data-act="rm">Remove</button>`;
  if ($("bp-actions").innerHTML !== acts) $("bp-actions").innerHTML = acts;
  if (!page.dir && b.status === "running") { page.dir = "."; loadFiles(); } // "." is the box's workdir
}

$("bp-actions").addEventListener("click", async (ev) => {
  const btn = ev.target.closest("button[data-act]"), b = curBox();
  if (!btn || !b) return;
  const act = btn.dataset.act, id = encodeURIComponent(b.id);
  if (act === "term") {
    location.hash = "#/";
    setTimeout(() => { $("term-box").value = b.id; $("term-btn").click(); }, 0);
    return;
  }
  if (act === "rm" && b.status === "running" && !confirm(`Box ${b.name || b.id} is running. Remove it with everything in it?`)) return;
  try {
    if (act === "rm") await api("DELETE", "boxes/" + id + "?force=true");
    else await api("POST", "boxes/" + id + ":" + act);
    toast(act + " ok");
    if (act === "rm") location.hash = "#/";
  } catch (e) { toast(e.message, true); }
  refresh();
});

// chart draws samples as a line over a filled area, newest at the right;
// 120 samples fill the width.
function chart(vals, max, label) {
  const w = 300, h = 90, n = 120;
  let svg = `<text x="4" y="12">${esc(label)}</text>`;
  if (vals.length < 2) return svg + `<text x="4" y="50">waiting for samples…</text>`;
  const pts = vals.map((v, i) => [w - (vals.length - 1 - i) * w / (n - 1), h - Math.min(v / max, 1) * (h - 16) - 2]);
  const line = pts.map((p) => p[0].toFixed(1) + "," + p[1].toFixed(1)).join(" ");
  return svg + `<polygon points="${pts[0][0].toFixed(1)},${h} ${line} ${w},${h}"/><polyline points="${line}"/>`;
}

function fmtBytes(n) {
  if (n < 0) return "n/a";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + u[i];
}

// drawCharts redraws the box page's charts from the stats stream's samples.
function drawCharts() {
  const h = statHist.get(page.box) || [], d = statLast.get(page.box);
  const cmax = Math.max(1, ...h.map((x) => x.cpu));
  $("bp-cpu-chart").innerHTML = chart(h.map((x) => x.cpu), cmax, "max " + cmax.toFixed(2) + " cores");
  const lim = h.length && h[h.length - 1].lim > 0 ? h[h.length - 1].lim : Math.max(1, ...h.map((x) => x.mem));
  $("bp-mem-chart").innerHTML = chart(h.map((x) => x.mem), lim, "limit " + fmtBytes(lim));
  $("bp-cpu-now").textContent = d ? Math.max(0, d.cpu_cores).toFixed(2) + " cores" : "–";
  $("bp-mem-now").textContent = d ? fmtBytes(d.memory_bytes) + (d.memory_peak_bytes > 0 ? " (peak " + fmtBytes(d.memory_peak_bytes) + ")" : "") : "–";
  $("bp-more").innerHTML = d ? `<span>processes <b>${d.processes < 0 ? "n/a" : d.processes}</b></span>` +
    `<span>disk used <b>${fmtBytes(d.disk_bytes)}</b></span><span>net in <b>${fmtBytes(d.net_rx_bytes)}</b></span>` +
    `<span>net out <b>${fmtBytes(d.net_tx_bytes)}</b></span><span>samples <b id="bp-samples">${h.length}</b></span>` : "";
}

// loadBoxExecs lists the box's execs; a click (or Enter) replays one.
async function loadBoxExecs() {
  const id = page.box;
  let list;
  try { list = await api("GET", "boxes/" + encodeURIComponent(id) + "/execs"); } catch (e) { $("bp-execs").textContent = e.message; return; }
  if (page.box !== id) return;
  const html = list.length === 0 ? "No executions." : list.map((x) => {
    const st = x.exit_code === null ? `<span class="badge ${esc(x.status)}">${esc(x.status)}</span>`
      : `<span class="${x.exit_code === 0 ? "ok" : "bad"}">exit ${x.exit_code}</span>`;
    return `<div class="replay" tabindex="0" role="button" data-exec="${esc(x.id)}">` +
      `${esc(x.id.slice(0, 15))} · ${esc(x.cmd.join(" "))} · ${age(x.created_at)} · ${st}</div>`;
  }).join("");
  if ($("bp-execs").innerHTML !== html) $("bp-execs").innerHTML = html;
}
setInterval(() => { if (page.box) loadBoxExecs(); }, 3000);

function replayBox(execId) {
  const out = $("bp-output");
  if (page.out) page.out.close();
  out.textContent = "";
  const add = (cls, text) => { const s = document.createElement("span"); s.className = cls; s.textContent = text; out.appendChild(s); out.scrollTop = out.scrollHeight; };
  const es = new EventSource(API + "boxes/" + encodeURIComponent(page.box) + "/exec/" + encodeURIComponent(execId) + "/events" + q(""));
  page.out = es;
  es.addEventListener("log", (e) => { const d = JSON.parse(e.data); add(d.stream, d.data); });
  es.addEventListener("exit", (e) => {
    const d = JSON.parse(e.data), x = JSON.parse(d.data);
    add("exit", "\n[exit " + x.exit_code + (x.error ? ": " + x.error : "") + "]\n");
    es.close(); if (page.out === es) page.out = null;
    loadBoxExecs();
  });
  es.onerror = () => { if (page.out === es) { es.close(); page.out = null; add("exit", "\n[stream lost]\n"); } };
}
$("bp-execs").addEventListener("click", (ev) => { const r = ev.target.closest("div.replay"); if (r) replayBox(r.dataset.exec); });
$("bp-execs").addEventListener("keydown", (ev) => {
  const r = ev.target.closest("div.replay");
  if (r && (ev.key === "Enter" || ev.key === " ")) { ev.preventDefault(); replayBox(r.dataset.exec); }
});

// joinPath joins a directory and a name of one of its entries.
function joinPath(dir, name) { return (dir.endsWith("/") ? dir : dir + "/") + name; }
function parentOf(dir) { const i = dir.replace(/\/+$/, "").lastIndexOf("/"); return i <= 0 ? "/" : dir.slice(0, i); }

// loadFiles lists page.dir of the box.
async function loadFiles() {
  const id = page.box, dir = page.dir, seq = ++page.files;
  let l;
  try { l = await api("GET", "boxes/" + encodeURIComponent(id) + "/files?path=" + encodeURIComponent(dir)); }
  catch (e) { if (seq === page.files) $("bp-files").innerHTML = `<tr><td colspan="5" class="empty">${esc(e.message)}</td></tr>`; return; }
  if (seq !== page.files || page.box !== id) return;
  page.dir = l.path; $("bp-path").value = l.path;
  const rows = l.entries.map((f) => {
    const name = f.type === "dir" ? `<button type="button" class="dir" data-dir="${esc(f.name)}">${esc(f.name)}/</button>`
      : esc(f.name) + (f.type === "symlink" ? ` <span class="usage">&rarr; ${esc(f.link)}</span>` : "");
    const dl = f.type === "file" ? `<button type="button" data-dl="${esc(f.name)}">Download</button>` : "";
    return `<tr data-name="${esc(f.name)}"><td class="fname">${name}</td><td>${f.type === "dir" ? "" : fmtBytes(f.size)}</td>` +
      `<td class="opt">${esc(f.mode)}</td><td class="opt">${esc(String(f.mtime).slice(0, 19).replace("T", " "))}</td><td>${dl}</td></tr>`;
  });
  if (l.truncated) rows.push(`<tr><td colspan="5" class="usage">… more entries not shown</td></tr>`);
  $("bp-files").innerHTML = rows.join("") || `<tr><td colspan="5" class="empty">Empty directory.</td></tr>`;
}
$("bp-files-form").addEventListener("submit", (ev) => { ev.preventDefault(); page.dir = $("bp-path").value.trim() || "/"; loadFiles(); });
$("bp-up").addEventListener("click", () => { page.dir = parentOf(page.dir); loadFiles(); });
$("bp-files").addEventListener("click", async (ev) => {
  const d = ev.target.closest("button[data-dir]");
  if (d) { page.dir = joinPath(page.dir, d.dataset.dir); return loadFiles(); }
  const f = ev.target.closest("button[data-dl]");
  if (f) download(joinPath(page.dir, f.dataset.dl), f.dataset.dl);
});

// download fetches a file of the box (files/download) and saves it.
async function download(path, name) {
  const opts = { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ path }) };
  if (token) opts.headers["Authorization"] = "Bearer " + token;
  try {
    const res = await fetch(API + "boxes/" + encodeURIComponent(page.box) + "/files/download", opts);
    if (!res.ok) { let m = "Download failed: " + res.status; try { m = (await res.json()).message || m; } catch (e) { /* not JSON */ } throw new Error(m); }
    const url = URL.createObjectURL(await res.blob()), a = document.createElement("a");
    a.href = url; a.download = name; document.body.appendChild(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    toast("downloaded " + name);
  } catch (e) { toast(e.message, true); }
}

// Upload puts the chosen file into the directory shown (files/upload).
$("bp-upload-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const file = $("bp-upload-file").files[0];
  if (!file) return toast("Choose a file first", true);
  const fd = new FormData();
  fd.append("dest", joinPath(page.dir, file.name)); fd.append("file", file, file.name);
  const opts = { method: "POST", body: fd, headers: {} };
  if (token) opts.headers["Authorization"] = "Bearer " + token;
  $("bp-upload-btn").disabled = true;
  try {
    const res = await fetch(API + "boxes/" + encodeURIComponent(page.box) + "/files/upload", opts);
    const data = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(data.message || "Upload failed: " + res.status);
    toast("uploaded " + data.dest);
    $("bp-upload-file").value = "";
    loadFiles();
  } catch (e) { toast(e.message, true); }
  $("bp-upload-btn").disabled = false;
});

// The file-watch feed follows the directory shown; changes in it also
// refresh the listing.
function stopWatch() {
  if (page.watch) { page.watch.close(); page.watch = null; }
  $("bp-watch-btn").textContent = "Watch this directory";
  $("bp-watch-state").textContent = "";
}
$("bp-watch-btn").addEventListener("click", () => {
  if (page.watch) return stopWatch();
  const dir = page.dir, feed = $("bp-watch-feed");
  const url = API + "boxes/" + encodeURIComponent(page.box) + "/watch?path=" + encodeURIComponent(dir) +
    "&recursive=" + ($("bp-watch-rec").checked ? "1" : "0") + q("?");
  const es = new EventSource(url);
  page.watch = es;
  $("bp-watch-btn").textContent = "Stop watching";
  $("bp-watch-state").textContent = "connecting…";
  let reload = null;
  const add = (e) => {
    const d = JSON.parse(e.data);
    if (e.type === "ready") { $("bp-watch-state").textContent = "watching " + d.path; return; }
    const div = document.createElement("div");
    div.className = e.type;
    div.textContent = String(d.time || "").slice(11, 19) + " " + e.type + " " +
      (e.type === "renamed" ? d.old_path + " → " + d.path : e.type === "overflow" ? d.dropped + " changes lost" : d.path) + (d.dir ? "/" : "");
    feed.prepend(div);
    while (feed.childElementCount > 200) feed.lastElementChild.remove();
    if (e.type !== "modified" && (parentOf(d.path || "") === page.dir || parentOf(d.old_path || "") === page.dir)) {
      clearTimeout(reload); reload = setTimeout(loadFiles, 300);
    }
  };
  for (const t of ["ready", "created", "modified", "removed", "renamed", "overflow"]) es.addEventListener(t, add);
  es.addEventListener("end", () => { stopWatch(); $("bp-watch-state").textContent = "watch ended"; });
  es.onerror = () => { if (page.watch === es) { stopWatch(); $("bp-watch-state").textContent = "watch ended"; } };
});

// The image cache: list, pull (POST images) with the progress of each
// layer from the server's image.pull events.
async function loadImageCache() {
  let imgs;
  try { imgs = await api("GET", "images"); } catch (e) { $("images").innerHTML = `<tr><td colspan="5" class="empty">${esc(e.message)}</td></tr>`; return; }
  $("images").innerHTML = imgs.length === 0 ? '<tr><td colspan="5" class="empty">No images cached.</td></tr>' : imgs.map((i) =>
    `<tr><td class="fname">${esc(i.ref)}</td><td>${fmtBytes(i.size)}</td><td class="opt">${esc(String(i.digest).slice(0, 19))}</td>` +
    `<td class="opt">${esc(String(i.created).slice(0, 19))}</td><td><button type="button" data-rmi="${esc(i.ref)}">Remove</button></td></tr>`).join("");
}
$("images").addEventListener("click", async (ev) => {
  const b = ev.target.closest("button[data-rmi]");
  if (!b || !confirm("Remove image " + b.dataset.rmi + " from the cache?")) return;
  try { await api("DELETE", "images?ref=" + encodeURIComponent(b.dataset.rmi)); toast("removed " + b.dataset.rmi); } catch (e) { toast(e.message, true); }
  loadImageCache();
});
const pull = { active: false, layers: new Map() };
function pullProgress(ev) {
  const p = ev.pull || {};
  if (!pull.active) return;
  const layer = p.Layer || p.layer || "?";
  pull.layers.set(layer, { done: p.Done ?? p.done ?? 0, total: p.Total ?? p.total ?? 0, cached: p.Cached ?? p.cached });
  let done = 0, total = 0;
  const rows = [...pull.layers].map(([l, x]) => {
    done += x.done; total += x.total;
    const pct = x.cached ? 100 : x.total > 0 ? Math.min(100, x.done * 100 / x.total) : 0;
    return `<div class="pull-layer"><code title="${esc(l)}">${esc(l.replace(/^sha256:/, "").slice(0, 12))}</code>` +
      `<div class="meter"><i style="width:${pct.toFixed(1)}%"></i></div><span>${x.cached ? "cached" : fmtBytes(x.done) + " / " + fmtBytes(x.total)}</span></div>`;
  });
  $("pull-progress").innerHTML = rows.join("");
  $("pull-state").textContent = total > 0 ? "pulling… " + Math.floor(done * 100 / total) + "%" : "pulling…";
}
$("pull-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const ref = $("pull-ref").value.trim();
  pull.active = true; pull.layers.clear();
  $("pull-progress").innerHTML = ""; $("pull-state").textContent = "pulling…";
  $("pull-btn").disabled = true;
  try {
    const img = await api("POST", "images", { ref });
    $("pull-state").textContent = "pulled " + img.ref + " (" + fmtBytes(img.size) + ")";
    toast("pulled " + img.ref);
  } catch (e) { $("pull-state").textContent = "failed"; toast(e.message, true); }
  pull.active = false;
  $("pull-btn").disabled = false;
  loadImageCache(); loadImages();
});

window.addEventListener("hashchange", route);
route();
