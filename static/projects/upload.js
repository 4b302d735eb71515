// The upload page: check the photos in the browser, zip them, send the zip in
// resumable chunks through the REST API, then start the project.
//
// Chunks are PATCHed with Upload-Offset (tus-like): a stale offset gets a 409
// with the server's offset, network failures are retried with backoff, and the
// project id is kept in localStorage so a reloaded page continues where the
// server says it stopped once the same files are chosen again.

import { ZIP_LIMIT, zipEntryNames, zipFiles, zipSize } from "./zip.js";

const config = JSON.parse(document.getElementById("upload-config").textContent);
const STORE_KEY = "openscan.pendingUpload";
const PHOTO_TYPES = { jpg: "jpeg", jpeg: "jpeg", png: "png" };
const IGNORED = /(^|\/)(\.[^/]*|__MACOSX|Thumbs\.db|desktop\.ini)(\/|$)/i;
const MIN_PHOTOS = 3;
const FEW_PHOTOS = 20;
const MAX_ATTEMPTS = 8;

const $ = (id) => document.getElementById(id);
const form = $("upload-form");
const dropzone = $("dropzone");
const button = $("upload-button");
const nameInput = $("project-name");
const csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;

let selection = null; // {mode: "photos"|"zip", entries, zipFile, photos, size, folder, fingerprint, problems}
let busy = false;

// ---------------------------------------------------------------- formatting
export function formatBytes(n) {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return i === 0 ? `${n} B` : `${n < 100 ? n.toFixed(1) : n.toFixed(0)} ${units[i]}`;
}
function formatTime(seconds) {
  if (!isFinite(seconds) || seconds < 0) return "–";
  seconds = Math.round(seconds);
  if (seconds < 60) return `${seconds} s`;
  const m = Math.floor(seconds / 60), s = seconds % 60;
  if (m < 60) return `${m} min ${String(s).padStart(2, "0")} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, "0")} min`;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- collecting files
async function filesFromDrop(dataTransfer) {
  const items = [...(dataTransfer.items || [])];
  const entries = items.map((it) => it.webkitGetAsEntry && it.webkitGetAsEntry()).filter(Boolean);
  if (!entries.length) return [...dataTransfer.files].map((file) => ({ file, path: file.name }));
  const out = [];
  async function walk(entry, prefix) {
    if (entry.isFile) {
      const file = await new Promise((res, rej) => entry.file(res, rej));
      out.push({ file, path: prefix + file.name });
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((res, rej) => reader.readEntries(res, rej));
        if (!batch.length) break;
        for (const child of batch) await walk(child, `${prefix}${entry.name}/`);
      }
    }
  }
  for (const entry of entries) await walk(entry, "");
  return out;
}

function filesFromInput(input) {
  return [...input.files].map((file) => ({ file, path: file.webkitRelativePath || file.name }));
}

async function sniff(file) {
  const head = new Uint8Array(await file.slice(0, 8).arrayBuffer());
  if (head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff) return "jpeg";
  if (head[0] === 0x89 && head[1] === 0x50 && head[2] === 0x4e && head[3] === 0x47) return "png";
  return "";
}

function fingerprint(parts) {
  // FNV-1a over names, sizes and dates: the same files give the same zip bytes.
  let h = 0x811c9dc5;
  for (const ch of parts.join("\n")) { h ^= ch.codePointAt(0); h = Math.imul(h, 0x01000193) >>> 0; }
  return h.toString(16);
}

// ---------------------------------------------------------------- checking
async function examine(items, limits) {
  const problems = [];
  const add = (level, text) => problems.push({ level, text });
  const usable = items.filter(({ path }) => !IGNORED.test(path));
  const ignored = items.length - usable.length;
  if (ignored) add("info", `${ignored} hidden or system file(s) left out.`);
  const folder = (items.find((i) => i.path.includes("/")) || { path: "" }).path.split("/")[0];

  const zips = usable.filter(({ file }) => /\.zip$/i.test(file.name));
  if (zips.length) {
    const others = usable.length - zips.length;
    if (zips.length > 1 || others) {
      add("error", "Choose either one zip or the photos themselves, not both.");
      return { mode: "zip", entries: [], photos: 0, size: 0, folder, problems };
    }
    const zipFile = zips[0].file;
    let names = [];
    try { names = await zipEntryNames(zipFile); } catch (err) { add("error", err.message); }
    const photos = names.filter((n) => !IGNORED.test(n) && PHOTO_TYPES[n.split(".").pop().toLowerCase()]).length;
    if (names.length && !photos) add("error", "The zip contains no JPEG or PNG photos.");
    const sel = { mode: "zip", zipFile, entries: [], photos, size: zipFile.size, folder: zipFile.name.replace(/\.zip$/i, ""), problems };
    sel.fingerprint = fingerprint([zipFile.name, zipFile.size, zipFile.lastModified]);
    checkLimits(sel, limits, add);
    return sel;
  }

  const byName = new Map();
  const skipped = [];
  const wrong = [];
  let duplicates = 0;
  for (const item of usable) {
    const ext = item.file.name.split(".").pop().toLowerCase();
    const kind = PHOTO_TYPES[ext];
    if (!kind) { skipped.push(item.file.name); continue; }
    if (item.file.size === 0) { add("error", `${item.path} is empty.`); continue; }
    const seen = byName.get(item.file.name.toLowerCase());
    if (seen) {
      if (seen.file.size === item.file.size) { duplicates++; continue; }
      add("error", `Two different photos are named ${item.file.name} (${seen.path} and ${item.path}); rename one.`);
      continue;
    }
    if ((await sniff(item.file)) !== kind) { wrong.push(item.path); continue; }
    byName.set(item.file.name.toLowerCase(), item);
  }
  if (skipped.length) {
    const heic = skipped.filter((n) => /\.(heic|heif)$/i.test(n)).length;
    const list = skipped.slice(0, 3).join(", ") + (skipped.length > 3 ? ` and ${skipped.length - 3} more` : "");
    add("warning", `${skipped.length} file(s) that are not JPEG or PNG will be left out: ${list}.` +
      (heic ? " Export HEIC photos as JPEG (on an iPhone: Settings → Camera → Formats → Most Compatible)." : ""));
  }
  if (wrong.length) add("error", `${wrong.length} file(s) are named like photos but their content is not JPEG or PNG: ${wrong.slice(0, 3).join(", ")}.`);
  if (duplicates) add("info", `${duplicates} duplicate(s) (same name and size) left out.`);
  const entries = [...byName.values()]
    .sort((a, b) => (a.file.name < b.file.name ? -1 : 1))
    .map(({ file }) => ({ name: file.name, file }));
  const sel = { mode: "photos", entries, photos: entries.length, size: zipSize(entries), folder, problems };
  sel.fingerprint = fingerprint(entries.map((e) => `${e.name}|${e.file.size}|${e.file.lastModified}`));
  checkLimits(sel, limits, add);
  return sel;
}

function checkLimits(sel, limits, add) {
  if (sel.photos && sel.photos < MIN_PHOTOS) add("error", `At least ${MIN_PHOTOS} photos are needed; ${sel.photos} chosen.`);
  else if (sel.photos && sel.photos < FEW_PHOTOS) add("warning", `Only ${sel.photos} photos: models usually need ${FEW_PHOTOS} or more, taken all around the object.`);
  if (sel.photos > limits.limit_photos) add("error", `${sel.photos} photos chosen; your token allows at most ${limits.limit_photos} per project.`);
  if (sel.size > limits.limit_filesize) add("error", `The upload would be ${formatBytes(sel.size)}; your token allows ${formatBytes(limits.limit_filesize)} per project. Choose fewer or smaller photos.`);
  if (sel.size > ZIP_LIMIT) add("error", "The upload would be over 4 GB; split the set into smaller projects.");
  if (!limits.public_token && sel.size > limits.credit) add("error", `The upload needs ${formatBytes(sel.size)} of credit; you have ${formatBytes(limits.credit)}.`);
  if (limits.public_token && limits.daily_quota !== null && sel.size > limits.credit) add("error", `Today's public quota has ${formatBytes(limits.credit)} left; this upload needs ${formatBytes(sel.size)}.`);
}

function render() {
  const box = $("selection");
  if (!selection) { box.hidden = true; button.disabled = true; return; }
  box.hidden = false;
  $("summary").textContent = selection.mode === "zip"
    ? `${selection.zipFile ? selection.zipFile.name : "zip"}: ${selection.photos} photos, ${formatBytes(selection.size)}`
    : `${selection.photos} photos, ${formatBytes(selection.size)} to upload`;
  const list = $("issues");
  list.replaceChildren(...selection.problems.map((p) => {
    const li = document.createElement("li");
    li.className = `issue--${p.level}`;
    li.textContent = p.text;
    return li;
  }));
  const blocked = selection.problems.some((p) => p.level === "error") || !selection.photos;
  button.disabled = blocked || busy;
  if (!nameInput.value.trim()) {
    const now = new Date();
    const stamp = `${now.getFullYear()}-${String(now.getMonth() + 1).padStart(2, "0")}-${String(now.getDate()).padStart(2, "0")}`;
    nameInput.value = `${stamp} ${selection.folder || "scan"}`.trim();
  }
}

async function api(method, url, body) {
  const response = await fetch(url, {
    method,
    credentials: "same-origin",
    headers: { "X-CSRFToken": csrf, Accept: "application/json", ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  let data = null;
  try { data = await response.json(); } catch { data = null; }
  if (!response.ok) {
    const message = (data && (data.error || data.detail)) || `The server answered ${response.status}.`;
    const err = new Error(typeof message === "string" ? message : JSON.stringify(message));
    err.status = response.status;
    throw err;
  }
  return data;
}

async function limitsNow() {
  try {
    const token = await api("GET", config.api_token);
    return { ...config, credit: token.credit, limit_filesize: token.limit_filesize, limit_photos: token.limit_photos, daily_quota: token.daily_quota, public_token: token.kind === "public" };
  } catch {
    return config; // The page's own figures; the server checks again anyway.
  }
}

async function choose(items) {
  if (busy || !items.length) return;
  $("summary").textContent = "Checking…";
  $("selection").hidden = false;
  selection = await examine(items, await limitsNow());
  render();
  const pending = loadPending();
  if (pending && selection.fingerprint === pending.fingerprint) {
    $("resume-text").textContent = `These are the same files: press Upload to continue “${pending.name}”.`;
    nameInput.value = pending.name;
  }
}

// ---------------------------------------------------------------- progress display
const progress = {
  total: 0, done: 0, samples: [],
  show(phase) { $("progress").hidden = false; $("progress").classList.remove("is-error"); $("progress-phase").textContent = phase; },
  note(text) { $("progress-note").textContent = text; },
  fail(text) { $("progress").classList.add("is-error"); $("progress-phase").textContent = "Upload stopped"; this.note(text); },
  update(done, total) {
    this.done = done; this.total = total;
    const now = performance.now();
    this.samples.push([now, done]);
    while (this.samples.length > 2 && now - this.samples[0][0] > 8000) this.samples.shift();
    const [t0, d0] = this.samples[0];
    const speed = now - t0 > 500 ? ((done - d0) / (now - t0)) * 1000 : 0;
    const pct = total ? Math.floor((done / total) * 1000) / 10 : 0;
    $("progress-bar").style.width = `${pct}%`;
    $("progress-percent").textContent = `${pct.toFixed(1)} %`;
    $("progress-bytes").textContent = `${formatBytes(done)} of ${formatBytes(total)}`;
    $("progress-speed").textContent = speed > 0 ? `${formatBytes(Math.round(speed))}/s` : "";
    $("progress-eta").textContent = speed > 0 ? `${formatTime((total - done) / speed)} left` : "";
  },
};

// ---------------------------------------------------------------- sending
function sendChunk(url, offset, body, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PATCH", url);
    xhr.timeout = 180_000;
    xhr.setRequestHeader("Upload-Offset", String(offset));
    xhr.setRequestHeader("Content-Type", "application/offset+octet-stream");
    xhr.setRequestHeader("X-CSRFToken", csrf);
    xhr.upload.onprogress = (e) => onProgress(e.loaded);
    xhr.onload = () => {
      let data = null;
      try { data = JSON.parse(xhr.responseText || "null"); } catch { data = null; }
      resolve({ status: xhr.status, offset: Number(xhr.getResponseHeader("Upload-Offset")), data });
    };
    xhr.onerror = () => reject(new Error("network"));
    xhr.ontimeout = () => reject(new Error("timeout"));
    xhr.send(body);
  });
}

async function uploadParts(project, blob, partSize) {
  const received = new Map(project.parts.map((p) => [p.index, p.received]));
  const partLength = (i) => Math.min(partSize, blob.size - i * partSize);
  let base = 0;
  for (const [i, got] of received) base += Math.min(got, partLength(i));
  progress.samples = [];
  progress.update(base, blob.size);
  for (const part of project.parts) {
    const start = part.index * partSize;
    const length = partLength(part.index);
    let offset = received.get(part.index) || 0;
    let attempt = 0;
    while (offset < length) {
      const end = Math.min(length, offset + config.chunk_size);
      const before = doneBytes();
      let result;
      try {
        result = await sendChunk(part.upload_url, offset, blob.slice(start + offset, start + end), (loaded) => progress.update(before + loaded, blob.size));
      } catch (err) {
        result = { status: 0, error: err };
      }
      if (result.status === 204) {
        offset = Number.isFinite(result.offset) && result.offset > 0 ? result.offset : end;
        received.set(part.index, offset);
        attempt = 0;
        progress.note("");
      } else if (result.status === 409 && result.data && Number.isInteger(result.data.received)) {
        offset = result.data.received; // The server has a different amount: continue from there.
        received.set(part.index, offset);
      } else if (result.status === 0 || result.status === 408 || result.status === 429 || result.status >= 500) {
        attempt++;
        if (attempt > MAX_ATTEMPTS) throw new Error("The connection keeps failing. Your upload is saved on the server: reload the page and choose the same photos to continue.");
        const wait = Math.min(30, 2 ** (attempt - 1)) * 1000 + Math.random() * 500;
        for (let left = Math.ceil(wait / 1000); left > 0; left--) {
          progress.note(`Connection problem (${result.status || "no answer"}); retrying in ${left} s (attempt ${attempt} of ${MAX_ATTEMPTS}).`);
          await sleep(1000);
        }
        try {
          const head = await fetch(part.upload_url, { method: "HEAD", credentials: "same-origin" });
          const serverOffset = Number(head.headers.get("Upload-Offset"));
          if (head.ok && Number.isFinite(serverOffset)) { offset = serverOffset; received.set(part.index, offset); }
        } catch { /* Still offline: the next PATCH will tell. */ }
      } else {
        const message = (result.data && (result.data.error || result.data.detail)) || `The server refused the upload (${result.status}).`;
        throw new Error(message);
      }
      progress.update(doneBytes(), blob.size);
    }
  }

  function doneBytes() {
    let sum = 0;
    for (const [i, got] of received) sum += Math.min(got, partLength(i));
    return sum;
  }
}

function loadPending() {
  try { return JSON.parse(localStorage.getItem(STORE_KEY) || "null"); } catch { return null; }
}
function savePending(value) {
  try { value ? localStorage.setItem(STORE_KEY, JSON.stringify(value)) : localStorage.removeItem(STORE_KEY); } catch { /* private mode */ }
}

async function upload(event) {
  event.preventDefault();
  if (!selection || busy) return;
  const name = nameInput.value.trim();
  if (!name) { nameInput.focus(); return; }
  busy = true;
  button.disabled = true;
  progress.show("Checking your credit");
  try {
    const limits = await limitsNow();
    const problems = [];
    checkLimits(selection, limits, (level, text) => level === "error" && problems.push(text));
    if (problems.length) throw new Error(problems.join(" "));

    let blob;
    if (selection.mode === "zip") {
      blob = selection.zipFile;
    } else {
      progress.show("Preparing the zip");
      blob = await zipFiles(selection.entries, (done, total) => {
        progress.note(`Reading photos: ${formatBytes(done)} of ${formatBytes(total)}`);
      });
      progress.note("");
    }
    const partSize = config.part_max;
    const parts = Math.max(1, Math.ceil(blob.size / partSize));
    const consent = form.querySelector("input[name=research_consent]:checked, input[type=hidden][name=research_consent]");
    const preset = form.querySelector("input[name=preset]:checked");

    let project = null;
    const pending = loadPending();
    if (pending && pending.fingerprint === selection.fingerprint && pending.size === blob.size) {
      progress.show("Asking the server what it already has");
      try {
        project = await api("GET", `${config.api_projects}${pending.id}/`);
        if (project.status !== "created" || project.filesize !== blob.size) project = null;
      } catch { project = null; }
    }
    if (!project) {
      progress.show("Creating the project");
      project = await api("POST", config.api_projects, {
        name, photos: selection.photos, filesize: blob.size, parts,
        preset: preset ? preset.value : "balanced",
        research_consent: consent ? consent.value === "yes" : false,
      });
    }
    savePending({ id: project.id, name: project.name, size: blob.size, photos: selection.photos, fingerprint: selection.fingerprint, at: Date.now() });
    $("resume-banner").hidden = true;
    progress.show(`Uploading “${project.name}”`);
    await uploadParts(project, blob, partSize);

    progress.show("Checking the photos on the server");
    progress.note("Every byte arrived; the server now checks the zip and queues the project.");
    await api("POST", `${config.api_projects}${project.id}/start/`);
    savePending(null);
    progress.show("Started");
    window.location.assign(config.project_page.replace("00000000-0000-0000-0000-000000000000", project.id));
  } catch (err) {
    progress.fail(err.message || String(err));
    busy = false;
    render();
  }
}

// ---------------------------------------------------------------- wiring
dropzone.addEventListener("dragover", (e) => { e.preventDefault(); dropzone.classList.add("is-over"); });
dropzone.addEventListener("dragleave", () => dropzone.classList.remove("is-over"));
dropzone.addEventListener("drop", async (e) => {
  e.preventDefault();
  dropzone.classList.remove("is-over");
  await choose(await filesFromDrop(e.dataTransfer));
});
$("pick-files").addEventListener("change", (e) => choose(filesFromInput(e.target)));
$("pick-folder").addEventListener("change", (e) => choose(filesFromInput(e.target)));
$("clear-selection").addEventListener("click", () => { if (!busy) { selection = null; render(); } });
form.addEventListener("submit", upload);
window.addEventListener("beforeunload", (e) => { if (busy) { e.preventDefault(); e.returnValue = ""; } });

(async () => {
  const pending = loadPending();
  if (!pending) return;
  try {
    const project = await api("GET", `${config.api_projects}${pending.id}/`);
    if (project.status !== "created") { savePending(null); return; }
    const got = project.parts.reduce((sum, p) => sum + p.received, 0);
    $("resume-text").textContent = `“${pending.name}”: ${formatBytes(got)} of ${formatBytes(pending.size)} (${pending.photos} photos) are on the server.`;
    $("resume-banner").hidden = false;
  } catch {
    savePending(null);
  }
})();
$("resume-discard").addEventListener("click", () => { savePending(null); $("resume-banner").hidden = true; });
