// Live status on the project page: polls the small REST status endpoint and updates
// the stage, progress bar, counters, times and log; reloads once it finishes.

const config = JSON.parse(document.getElementById("status-config").textContent);
const $ = (id) => document.getElementById(id);

const STAGES = {
  starting: "Starting",
  ingest: "Reading the photos",
  features: "Finding features",
  matching: "Matching photos",
  sparse: "Placing the cameras",
  dense: "Measuring depth",
  mesh: "Building the surface",
  texture: "Painting the texture",
  export: "Writing the files",
  done: "Done",
};
const STATUS_TITLE = {
  created: "Waiting for the upload",
  queued: "In the queue",
  processing: "Processing",
  done: "Done",
  failed: "Processing failed",
  cancelled: "Cancelled",
  expired: "Expired",
};
const DISPLAY = {
  created: "Waiting for upload", queued: "Queued", processing: "Processing", done: "Done",
  failed: "Failed", cancelled: "Cancelled", expired: "Expired",
};
const LABELS = { registered: "registered", images: "images", points: "points", faces: "faces", views: "views" };

function formatTime(seconds) {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) return "–";
  seconds = Math.max(0, Math.round(seconds));
  if (seconds < 60) return `${seconds} s`;
  const m = Math.floor(seconds / 60), s = seconds % 60;
  if (m < 60) return `${m} min ${String(s).padStart(2, "0")} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, "0")} min`;
}

function stageName(stage) {
  if (!stage) return "–";
  return STAGES[stage] || stage.charAt(0).toUpperCase() + stage.slice(1).replaceAll("_", " ");
}

export function countersText(counters) {
  if (!counters || typeof counters !== "object") return "–";
  const parts = [];
  const c = { ...counters };
  if ("registered" in c && "images" in c) {
    parts.push(`registered ${c.registered}/${c.images} images`);
    delete c.registered; delete c.images;
  }
  for (const [key, value] of Object.entries(c)) {
    if (typeof value === "number") parts.push(`${LABELS[key] || key.replaceAll("_", " ")} ${value.toLocaleString()}`);
  }
  return parts.length ? parts.join(" · ") : "–";
}

// What the current step counts, from the worker: "31 of 66 photos".
export function countText(count) {
  if (!count || typeof count !== "object" || !count.unit || !(count.total > 0)) return "";
  return `${Number(count.done).toLocaleString()} of ${Number(count.total).toLocaleString()} ${count.unit}`;
}

function render(project) {
  const p = project.progress || {};
  $("status-badge").textContent = DISPLAY[project.status] || project.status;
  $("status-badge").className = `badge badge--${project.status}`;
  const title = $("status-stage");
  if (project.status === "processing") {
    const idx = Number.isInteger(p.stage_index) && p.stage_count ? ` (step ${p.stage_index + 1} of ${p.stage_count})` : "";
    title.textContent = `${stageName(p.stage)}${idx}`;
  } else if (project.status === "queued") {
    title.textContent = project.queue_position ? `In the queue: ${project.queue_position} ahead` : "In the queue: next up";
  } else {
    title.textContent = STATUS_TITLE[project.status] || project.status;
  }
  const overall = typeof p.overall === "number" ? p.overall : project.status === "done" ? 1 : 0;
  const bar = $("status-bar");
  if (bar) {
    bar.style.width = `${(overall * 100).toFixed(1)}%`;
    bar.parentElement.setAttribute("aria-valuenow", String(Math.floor(overall * 100)));
  }
  $("status-percent").textContent = project.status === "processing" ? `${Math.floor(overall * 100)}\u00a0%` : ""; // one line on a phone
  const counted = countText(p.count);
  if ($("status-step")) $("status-step").textContent = counted || p.message || stageName(p.stage);
  const counters = countersText(p.counters);
  const stepShare = project.status === "processing" && typeof p.fraction === "number" ? `${Math.floor(p.fraction * 100)} % of this step` : "–";
  if ($("status-counters")) $("status-counters").textContent = counters !== "–" ? counters : stepShare;
  if ($("status-elapsed")) $("status-elapsed").textContent = formatTime(p.elapsed_seconds);
  if ($("status-eta")) $("status-eta").textContent = p.eta_seconds === null || p.eta_seconds === undefined ? (project.status === "processing" ? "estimating…" : "–") : formatTime(p.eta_seconds);
  const log = Array.isArray(p.log) ? p.log.slice(-30) : [];
  const pre = $("status-log");
  const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
  pre.textContent = log.length ? log.join("\n") : "No messages yet.";
  if (atBottom) pre.scrollTop = pre.scrollHeight;
}

let failures = 0;
async function poll() {
  if (document.hidden) { setTimeout(poll, config.poll_ms); return; }
  try {
    const response = await fetch(config.api, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (response.status === 404) { window.location.assign("/projects/"); return; }
    if (!response.ok) throw new Error(String(response.status));
    const project = await response.json();
    failures = 0;
    render(project);
    if (project.status !== config.status && ["done", "failed", "cancelled", "expired"].includes(project.status)) {
      window.location.reload(); // The finished page shows the viewer and downloads.
      return;
    }
    if (project.status !== config.status && config.status === "created") config.status = project.status;
  } catch {
    failures++;
  }
  setTimeout(poll, Math.min(30_000, config.poll_ms * 2 ** Math.min(failures, 4)));
}

if (!config.terminal) poll();
