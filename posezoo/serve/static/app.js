// posezoo's page: the webcam streamed to WS /v1/models/{model}/stream, skeletons drawn over the video
// in posezoo.io.draw's style and colours (sent by GET /v1/models), and photos dropped on the page sent
// to POST /v1/models/{model}/predict. Plain JavaScript, no build step, nothing from another host.
"use strict";

const $ = (id) => document.getElementById(id);
const MAX_SIDE = 640; // frames are scaled down to this long side before they are sent
const IN_FLIGHT = 2; // frames sent and not yet answered (or dropped) before the next is sent
const params = new URLSearchParams(location.search);

// The page's state; window.posezoo lets a test (or a curious user) read it.
const state = {
  models: [], colors: null, model: null, key: sessionStorage.getItem("posezoo-key") || "",
  ws: null, stream: null, timer: null, sent: 0, results: 0, errors: 0, dropped: 0,
  sentAt: new Map(), resultTimes: [], latency: null, modelMs: null, posesSeen: 0, lastPoses: [],
  photos: 0, lastError: "",
};
window.posezoo = state;

function say(text) { $("message").textContent = text || ""; if (text) state.lastError = text; }

function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (state.key) h["Authorization"] = "Bearer " + state.key;
  return h;
}

async function loadModels() {
  const r = await fetch("/v1/models", { headers: headers() });
  if (r.status === 401) {
    $("keybox").style.display = "flex";
    say("This server needs an API key.");
    return;
  }
  const body = await r.json();
  if (!r.ok) { say(body.error || "cannot list the models"); return; }
  $("keybox").style.display = state.key ? "flex" : "none";
  state.models = body.models;
  state.colors = body.colors;
  const select = $("model");
  select.innerHTML = "";
  for (const m of body.models) {
    const opt = document.createElement("option");
    opt.value = m.id;
    opt.textContent = `${m.name} (${m.variant}, ${m.keypoint_names.length} keypoints)`;
    select.appendChild(opt);
  }
  const wanted = params.get("model");
  const found = body.models.find((m) => m.id === wanted || m.name === wanted);
  select.value = found ? found.id : body.default;
  state.model = body.models.find((m) => m.id === select.value);
  say("");
}

// ------------------------------------------------------------------------------------------ drawing

function sideColor(side) {
  const c = state.colors;
  return side === "left" ? c.left : side === "right" ? c.right : c.centre;
}

// posezoo.io.draw.draw_poses, on a canvas: outlines under every line, lines coloured by side (centre
// when the two ends differ), points over them; points under the visibility (or score) threshold of
// 0.5 are drawn faded (see-through, on thinner lines) with their edges. Sizes follow the image as
// draw.py's do, and a point is at most 2.5% of its person's size.
function drawPoses(ctx, poses, model, width, height) {
  ctx.clearRect(0, 0, width, height);
  if (!poses || !model || !state.colors) return;
  const imageRadius = Math.max(2.5, Math.min(width, height) / 100);
  const sides = model.keypoint_sides;
  for (const pose of poses) {
    const cols = pose.columns;
    const ci = cols.indexOf("visibility") >= 0 ? cols.indexOf("visibility") : cols.indexOf("score");
    const pts = pose.landmarks;
    const finite = pts.map((p) => p != null && Number.isFinite(p[0]) && Number.isFinite(p[1]));  // null: a part not found
    const sure = pts.map((p, i) => finite[i] && (ci < 0 || p[ci] >= 0.5));
    const xs = pts.filter((p, i) => finite[i]).map((p) => p[0]);
    const ys = pts.filter((p, i) => finite[i]).map((p) => p[1]);
    const extent = xs.length > 1 ? Math.max(Math.max(...xs) - Math.min(...xs), Math.max(...ys) - Math.min(...ys)) : 0;
    const radius = extent > 0 ? Math.min(imageRadius, Math.max(2.5, 0.025 * extent)) : imageRadius;
    const thick = Math.max(1, Math.round(radius / 2));
    const outline = Math.max(1, Math.round(radius / 5));
    const r = Math.max(radius, thick / 2 + 1);
    ctx.lineCap = "round";
    // the faded first, then the confident over them
    for (const confident of [false, true]) {
      const edges = model.skeleton.filter(([a, b]) => finite[a] && finite[b] && (sure[a] && sure[b]) === confident);
      const lineW = confident ? thick : Math.max(1, Math.floor(thick / 2));
      const ring = confident ? outline : 1;
      ctx.globalAlpha = confident ? 1 : 0.45;
      ctx.strokeStyle = state.colors.outline;
      ctx.lineWidth = lineW + 2 * ring;
      for (const [a, b] of edges) { ctx.beginPath(); ctx.moveTo(pts[a][0], pts[a][1]); ctx.lineTo(pts[b][0], pts[b][1]); ctx.stroke(); }
      ctx.lineWidth = lineW;
      for (const [a, b] of edges) {
        ctx.strokeStyle = sides[a] === sides[b] ? sideColor(sides[a]) : state.colors.centre;
        ctx.beginPath(); ctx.moveTo(pts[a][0], pts[a][1]); ctx.lineTo(pts[b][0], pts[b][1]); ctx.stroke();
      }
      pts.forEach((p, i) => {
        if (!finite[i] || sure[i] !== confident) return;
        const pr = confident ? r : 0.85 * r;
        ctx.fillStyle = state.colors.outline;
        ctx.beginPath(); ctx.arc(p[0], p[1], pr + ring, 0, 2 * Math.PI); ctx.fill();
        ctx.fillStyle = sideColor(sides[i]);
        ctx.beginPath(); ctx.arc(p[0], p[1], pr, 0, 2 * Math.PI); ctx.fill();
      });
    }
    ctx.globalAlpha = 1;
  }
}

function showStats() {
  const now = performance.now();
  state.resultTimes = state.resultTimes.filter((t) => now - t < 1000);
  $("fps").textContent = state.results ? String(state.resultTimes.length) : "-";
  $("latency").textContent = state.latency == null ? "-" : state.latency.toFixed(0);
  $("modelms").textContent = state.modelMs == null ? "-" : state.modelMs.toFixed(0);
  $("dropped").textContent = String(state.dropped);
  $("poses").textContent = state.lastPoses ? String(state.lastPoses.length) : "-";
}

// ------------------------------------------------------------------------------------------ camera

function streamUrl(model) {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const q = new URLSearchParams({ max_poses: String(model.max_poses && model.max_poses > 1 ? Math.min(model.max_poses, 6) : 1) });
  if (state.key) q.set("token", state.key);
  return `${proto}//${location.host}/v1/models/${encodeURIComponent(model.id)}/stream?${q}`;
}

async function startCamera() {
  stopCamera();
  const model = state.model;
  if (!model) { say("no model to run"); return; }
  try {
    state.stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
  } catch (err) {
    say("cannot open the camera: " + (err && err.message ? err.message : err));
    return;
  }
  const video = $("video");
  video.srcObject = state.stream;
  await video.play();
  $("photo").classList.add("hidden");
  video.classList.remove("hidden");
  $("hint").classList.add("hidden");
  $("start").disabled = true;
  $("stop").disabled = false;
  Object.assign(state, { sent: 0, results: 0, errors: 0, dropped: 0, sentAt: new Map(), latency: null, modelMs: null });
  const ws = new WebSocket(streamUrl(model));
  ws.binaryType = "arraybuffer";
  state.ws = ws;
  const grab = document.createElement("canvas");
  const overlay = $("overlay");
  ws.onmessage = (ev) => {
    const msg = JSON.parse(ev.data);
    if (msg.type === "poses") {
      state.results += 1;
      state.resultTimes.push(performance.now());
      state.dropped = msg.dropped;
      state.modelMs = msg.model_ms;
      const t = state.sentAt.get(msg.frame);
      if (t !== undefined) state.latency = performance.now() - t;
      for (const k of state.sentAt.keys()) if (k <= msg.frame) state.sentAt.delete(k);
      state.lastPoses = msg.poses;
      if (msg.poses.length) state.posesSeen += 1;
      if (overlay.width !== msg.width || overlay.height !== msg.height) { overlay.width = msg.width; overlay.height = msg.height; }
      drawPoses(overlay.getContext("2d"), msg.poses, model, msg.width, msg.height);
      showStats();
    } else if (msg.type === "error") {
      state.errors += 1;
      say(msg.error);
    }
  };
  ws.onclose = (ev) => { if (state.ws === ws) { if (ev.code !== 1000) say(`stream closed (${ev.code}) ${ev.reason || ""}`); stopCamera(); } };
  ws.onopen = () => {
    const interval = 1000 / Math.min(30, (state.modelsLimits && state.modelsLimits.max_fps) || 30);
    state.timer = setInterval(() => {
      if (ws.readyState !== WebSocket.OPEN || !video.videoWidth) return;
      const answered = state.results + state.dropped + state.errors;
      if (state.sent - answered >= IN_FLIGHT) return;
      const scale = Math.min(1, MAX_SIDE / Math.max(video.videoWidth, video.videoHeight));
      grab.width = Math.round(video.videoWidth * scale);
      grab.height = Math.round(video.videoHeight * scale);
      grab.getContext("2d").drawImage(video, 0, 0, grab.width, grab.height);
      const index = state.sent++;
      state.sentAt.set(index, performance.now());
      grab.toBlob((blob) => { if (blob && ws.readyState === WebSocket.OPEN) ws.send(blob); }, "image/jpeg", 0.8);
    }, interval);
  };
}

function stopCamera() {
  if (state.timer) clearInterval(state.timer);
  state.timer = null;
  if (state.ws) { const ws = state.ws; state.ws = null; try { ws.close(1000); } catch (e) { /* closed */ } }
  if (state.stream) { for (const t of state.stream.getTracks()) t.stop(); state.stream = null; }
  $("start").disabled = false;
  $("stop").disabled = true;
}

// ------------------------------------------------------------------------------------------ photos

async function predictPhoto(file) {
  stopCamera();
  const model = state.model;
  if (!model || !file) return;
  const bitmap = await createImageBitmap(file).catch(() => null);
  if (!bitmap) { say("that file is not an image this browser can show"); return; }
  const photo = $("photo");
  photo.width = bitmap.width;
  photo.height = bitmap.height;
  photo.getContext("2d").drawImage(bitmap, 0, 0);
  $("video").classList.add("hidden");
  photo.classList.remove("hidden");
  $("hint").classList.add("hidden");
  const overlay = $("overlay");
  overlay.width = bitmap.width;
  overlay.height = bitmap.height;
  overlay.getContext("2d").clearRect(0, 0, overlay.width, overlay.height);
  const maxPoses = model.max_poses && model.max_poses > 1 ? Math.min(model.max_poses, 6) : 1;
  const t0 = performance.now();
  const r = await fetch(`/v1/models/${encodeURIComponent(model.id)}/predict?max_poses=${maxPoses}`, {
    method: "POST", body: file, headers: headers({ "Content-Type": file.type || "application/octet-stream" }),
  });
  const body = await r.json();
  if (!r.ok) { say(body.error || `error ${r.status}`); return; }
  Object.assign(state, { latency: performance.now() - t0, results: 0, resultTimes: [], dropped: 0, modelMs: null });
  state.lastPoses = body.poses;
  state.photos += 1;
  if (body.poses.length) state.posesSeen += 1;
  drawPoses(overlay.getContext("2d"), body.poses, model, body.width, body.height);
  say(body.poses.length ? "" : "no person found");
  showStats();
}

// ------------------------------------------------------------------------------------------ wiring

$("start").onclick = startCamera;
$("stop").onclick = stopCamera;
$("model").onchange = () => {
  state.model = state.models.find((m) => m.id === $("model").value);
  if (state.ws) startCamera();
};
$("file").onchange = (ev) => predictPhoto(ev.target.files[0]);
$("savekey").onclick = () => { state.key = $("key").value.trim(); sessionStorage.setItem("posezoo-key", state.key); loadModels(); };
const stage = $("stage");
stage.addEventListener("dragover", (ev) => { ev.preventDefault(); stage.classList.add("over"); });
stage.addEventListener("dragleave", () => stage.classList.remove("over"));
stage.addEventListener("drop", (ev) => {
  ev.preventDefault();
  stage.classList.remove("over");
  const file = ev.dataTransfer.files[0];
  if (file) predictPhoto(file);
});
setInterval(showStats, 500);
loadModels().then(() => { if (params.get("autostart") === "1") startCamera(); });
