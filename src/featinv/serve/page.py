"""The explorer's one page: plain HTML, CSS and JavaScript, nothing fetched from elsewhere (it
works offline and sends nothing out). It talks to :mod:`featinv.serve.app`'s JSON API and follows a
run through its event stream (``EventSource``)."""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>featinv explorer</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 0; color: #222; background: #fafafa; }
header { background: #263238; color: #fff; padding: 8px 16px; }
header b { font-size: 16px; } header span { opacity: .7; margin-left: 12px; }
main { display: grid; grid-template-columns: 330px 1fr; gap: 16px; padding: 16px; }
section { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 12px; margin-bottom: 16px; }
h2 { font-size: 15px; margin: 0 0 8px; }
label { display: block; margin: 6px 0 2px; color: #555; }
select, input { width: 100%; box-sizing: border-box; }
button { margin: 8px 6px 0 0; padding: 5px 12px; }
#error { display: none; background: #fdecea; color: #a31515; border: 1px solid #f5c2c0; padding: 8px;
  border-radius: 4px; margin-bottom: 12px; white-space: pre-wrap; }
#live { width: min(100%, 640px); min-height: 128px; background: #eee; display: block; }
.caption { color: #555; width: min(100%, 640px); display: flex; justify-content: space-around; }
#curve { width: 100%; height: 160px; background: #fff; border: 1px solid #eee; }
#numbers { font-family: ui-monospace, monospace; margin-top: 6px; }
table { border-collapse: collapse; width: 100%; } td, th { padding: 3px 6px; border-bottom: 1px solid #eee;
  text-align: left; } tr.run:hover { background: #f1f8ff; cursor: pointer; }
#viewer { width: 100%; height: 600px; border: 1px solid #ddd; display: none; background: #fff; }
.muted { color: #888; }
#layer-note { min-height: 1.3em; }  /* its text comes and goes: the form below must not move */
</style></head>
<body>
<header><b>featinv explorer</b><span id="where"></span></header>
<main>
<div>
<section><h2>New run</h2>
<form id="new">
<label for="photo">photo</label><select id="photo" name="photo"></select>
<label for="upload">or upload one</label><input id="upload" name="upload" type="file" accept="image/*">
<label for="model">model</label><select id="model" name="model"></select>
<label for="weights">weights</label>
<select id="weights" name="weights"><option value="">the model's (pretrained)</option>
<option value="none">none (random, seeded)</option></select>
<label for="layers">layer (a name from the list, or several: relu3_3,relu4_3)</label>
<input id="layers" name="layers" list="layer-list" autocomplete="off"><datalist id="layer-list"></datalist>
<div id="layer-note" class="muted"></div>
<label for="param">parameterisation</label><select id="param" name="param"></select>
<label for="size">size (px)</label><input id="size" name="size" type="number">
<label for="steps">steps</label><input id="steps" name="steps" type="number">
<button id="start" type="submit">Start</button>
</form></section>
</div>
<div>
<div id="error" role="alert"></div>
<section><h2 id="title">No run yet: choose one on the left, or start one</h2>
<img id="live" alt="target | reconstruction">
<div class="caption"><span>target</span><span>reconstruction</span></div>
<div id="status" class="muted"></div>
<div class="muted">loss (log scale) <span id="range"></span></div>
<svg id="curve" viewBox="0 0 600 160" preserveAspectRatio="none"><polyline id="loss" fill="none"
 stroke="#1565c0" stroke-width="1.5" points=""/></svg>
<div id="numbers"></div>
<button id="stop" type="button" disabled>Stop</button>
<button id="resume" type="button" disabled>Resume</button>
<button id="report" type="button" disabled>Report</button>
<a id="open" target="_blank" style="display:none">open in a new tab</a>
</section>
<section><h2>Runs</h2><div class="muted" id="runs-root"></div>
<table><thead><tr><th></th><th>run</th><th>state</th><th>PSNR</th><th></th></tr></thead>
<tbody id="runs"></tbody></table>
<button id="compare" type="button">Side by side</button></section>
<iframe id="viewer" title="report"></iframe>
</div>
</main>
<script>
const $ = (id) => document.getElementById(id);
let current = null, source = null, losses = [], frames = 0, layerRows = [];
const picked = new Set();  // the runs ticked for side by side (kept while the list refreshes)

function showError(message) { const e = $("error"); e.textContent = message; e.style.display = "block"; }
function clearError() { $("error").style.display = "none"; $("error").textContent = ""; }
async function call(url, options) {
  const response = await fetch(url, options);
  let body = {};
  try { body = await response.json(); } catch (e) { body = {error: response.status + " " + response.statusText}; }
  if (!response.ok) { throw new Error(body.error || response.statusText); }
  return body;
}
function option(select, value, text) {
  const o = document.createElement("option"); o.value = value; o.textContent = text || value; select.appendChild(o);
}

async function loadOptions() {
  const o = await call("/api/options");
  $("where").textContent = "runs in " + o.runs;
  for (const p of o.photos) option($("photo"), p);
  for (const m of o.models) option($("model"), m.name, m.name + (m.offline ? "" : "  (needs a download)"));
  $("model").value = o.defaults.model; $("size").value = o.defaults.size; $("steps").value = o.defaults.steps;
  $("size").title = "16 to " + o.limits.max_size; $("steps").title = "1 to " + o.limits.max_steps;
  window.paramNames = o.params;
  await loadLayers();
}

let layersAsked = 0, layersError = null;
async function loadLayers() {
  const q = new URLSearchParams({model: $("model").value, weights: $("weights").value, size: $("size").value});
  const asked = ++layersAsked;
  $("layer-note").textContent = "loading the layers of " + $("model").value + "...";
  try {
    const t = await call("/api/layers?" + q);
    if (asked !== layersAsked) return;  // the form changed again meanwhile: a newer answer comes
    layerRows = t.rows;
    $("layer-list").innerHTML = "";
    for (const r of t.rows) option($("layer-list"), r.name, r.shape.join("x") + ", stride " + r.stride);
    if (!t.rows.some((r) => r.name === $("layers").value)) $("layers").value = t.default;
    $("layer-note").textContent = t.model + " at " + t.size + " px: " + t.rows.length + " layers";
    fillParams();
    if ($("error").textContent === layersError) clearError();  // only its own message: a run's stays
    layersError = null;
  } catch (e) {
    if (asked !== layersAsked) return;
    $("layer-note").textContent = "";
    layersError = e.message;
    showError(e.message);
  }
}

function fillParams() {
  const row = layerRows.find((r) => r.name === $("layers").value);
  $("param").innerHTML = "";
  const chosen = row ? " (" + row.param + ", lr " + row.lr + ", tv " + row.tv + ")" : "";
  option($("param"), "", "the layer's default" + chosen);
  for (const p of window.paramNames) option($("param"), p);
}

async function start(event) {
  event.preventDefault();
  clearError();
  const form = new FormData($("new"));
  if (!$("upload").files.length) form.delete("upload");
  try {
    const r = await call("/api/runs", {method: "POST", body: form});
    watch(r.name);
    refreshRuns();
  } catch (e) { showError(e.message); }
}

function drawCurve() {
  if (!losses.length) { $("loss").setAttribute("points", ""); return; }
  const logs = losses.map((v) => Math.log10(Math.max(v, 1e-12)));
  const lo = Math.min(...logs), hi = Math.max(...logs), span = hi - lo || 1, n = Math.max(losses.length - 1, 1);
  $("range").textContent = "from " + (10 ** hi).toPrecision(3) + " to " + (10 ** lo).toPrecision(3);
  $("loss").setAttribute("points", logs.map((v, i) => (600 * i / n).toFixed(1) + "," +
    (150 - 140 * (v - lo) / span).toFixed(1)).join(" "));
}

function watch(name) {
  if (source) source.close();
  current = name; losses = []; frames = 0;
  $("title").textContent = name; $("numbers").textContent = ""; $("viewer").style.display = "none";
  $("open").style.display = "none"; $("report").disabled = true;
  source = new EventSource("/api/runs/" + name + "/events");
  source.onmessage = (message) => {
    const e = JSON.parse(message.data);
    if (e.name !== current) return;
    losses = losses.slice(0, e.from).concat(e.losses);
    if (e.frame) { $("live").src = "data:image/png;base64," + e.frame; frames += 1; $("live").dataset.frames = frames; }
    const last = losses.length ? ", loss " + losses[losses.length - 1].toPrecision(4) : "";
    $("status").textContent = e.state + ": step " + e.step + "/" + e.steps + last;
    $("status").dataset.state = e.state;
    drawCurve();
    const running = e.state === "running" || e.state === "queued";
    $("stop").disabled = !running; $("resume").disabled = running || e.state === "done";
    $("report").disabled = !e.summary;
    if (e.error) showError(e.error);
    if (e.summary) {
      const s = e.summary, errors = Object.entries(s.feature_error || {}).map(([k, v]) => k + " " + v.toFixed(4));
      $("numbers").textContent = "PSNR " + s.psnr.toFixed(2) + " dB, SSIM " + s.ssim.toFixed(3) +
        ", feature error " + errors.join(", ") + ", " + (s.seconds_per_step * 1000).toFixed(0) + " ms/step";
      refreshRuns();
    }
  };
}

async function act(what) {
  clearError();
  try {
    const r = await call("/api/runs/" + current + "/" + what, {method: "POST"});
    if (what === "resume") watch(current);
    if (r.url) show(r.url);
    refreshRuns();
  } catch (e) { showError(e.message); }
}

function show(url) {
  $("viewer").src = url; $("viewer").style.display = "block";
  $("open").href = url; $("open").style.display = "inline";
}

async function openReport(name, written) {
  clearError();
  try {
    const url = written ? "/files/" + name + "/report.html"
      : (await call("/api/runs/" + name + "/report", {method: "POST"})).url;
    show(url);
    refreshRuns();
  } catch (e) { showError(e.message); }
}

async function refreshRuns() {
  try {
    const r = await call("/api/runs");
    const body = $("runs"); body.innerHTML = "";
    for (const run of r.runs) {
      const tr = document.createElement("tr"); tr.className = "run"; tr.dataset.name = run.name;
      const pick = document.createElement("input"); pick.type = "checkbox"; pick.value = run.name;
      pick.disabled = run.kind !== "run"; pick.checked = picked.has(run.name);
      pick.onclick = (ev) => {
        ev.stopPropagation();
        if (pick.checked) picked.add(run.name); else picked.delete(run.name);
      };
      const cells = [pick, run.name + (run.kind === "run" ? "" : "  (" + run.kind + ")"), run.state,
        run.psnr == null ? "" : run.psnr.toFixed(2)];
      for (const c of cells) { const td = document.createElement("td"); td.append(c); tr.appendChild(td); }
      const td = document.createElement("td"), b = document.createElement("button");
      b.textContent = run.report ? "report" : "make report"; b.className = "report";
      b.onclick = (ev) => { ev.stopPropagation(); openReport(run.name, run.report); };
      if (run.kind === "run" && run.state !== "done" && !run.report) b.disabled = true;
      td.appendChild(b); tr.appendChild(td);
      tr.onclick = () => { if (run.kind === "run") watch(run.name); else openReport(run.name, run.report); };
      body.appendChild(tr);
    }
  } catch (e) { showError(e.message); }
}

async function compare() {
  clearError();
  const two = [...picked];
  if (two.length !== 2) { showError("tick two runs to put side by side (ticked: " + two.length + ")"); return; }
  const form = new FormData(); form.append("a", two[0]); form.append("b", two[1]);
  try { show((await call("/api/compare", {method: "POST", body: form})).url); } catch (e) { showError(e.message); }
}

$("new").addEventListener("submit", start);
$("model").addEventListener("change", loadLayers);
$("weights").addEventListener("change", loadLayers);
$("size").addEventListener("change", loadLayers);
$("layers").addEventListener("change", fillParams);
$("stop").onclick = () => act("stop");
$("resume").onclick = () => act("resume");
$("report").onclick = () => act("report");
$("compare").onclick = compare;
loadOptions().catch((e) => showError(e.message));
refreshRuns();
setInterval(refreshRuns, 3000);
</script></body></html>
"""
