// The upload page: check the photos in the browser, zip them, send the zip in
// resumable chunks through the REST API, then start the project.
//
// Checks run in a worker (check-worker.js), one photo at a time: first the
// blocking ones (type, size, duplicates by SHA-256, which also gives the zip's
// CRCs), then the CLI's sharpness and exposure warnings, which never block.
// A bad photo can be removed on its own, or all of them in one click.
//
// The zip is laid out from the file sizes alone (stored entries) and read by
// range while it is sent, so the first byte leaves at once. Chunks are PATCHed
// with Upload-Offset (tus-like): a stale offset gets a 409 with the server's
// offset, network failures are retried with backoff, and the project id is
// kept in localStorage so a reloaded page continues where the server says it
// stopped once the same files are chosen again.

import { blurred, exposureIssues, LIMITS } from "./photo-checks.js";
import { thumbnails } from "./thumbs.js";
import { StreamingZip, ZIP_LIMIT, zipEntryNames, zipSize } from "./zip.js";

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

// {mode: "photos", records, folder, problems, checking} or {mode: "zip", zipFile, photos, size, ...}
let selection = null;
let busy = false;
let generation = 0; // a newer choice makes the checks of an older one stop
let nextId = 0; // record ids are never reused, so a stale worker answer cannot match

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
const el = (tag, className, text) => {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
};

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

function fingerprint(parts) {
  // FNV-1a over names, sizes and dates: the same files give the same zip bytes.
  let h = 0x811c9dc5;
  for (const ch of parts.join("\n")) { h ^= ch.codePointAt(0); h = Math.imul(h, 0x01000193) >>> 0; }
  return h.toString(16);
}

// ---------------------------------------------------------------- the checking worker
const checker = {
  worker: null,
  waiting: new Map(),
  run(op, record, extra = {}) {
    if (!this.worker) {
      this.worker = new Worker(new URL("./check-worker.js", import.meta.url), { type: "module" });
      this.worker.onmessage = ({ data }) => {
        const resolve = this.waiting.get(`${data.op}:${data.id}`);
        this.waiting.delete(`${data.op}:${data.id}`);
        if (resolve) resolve(data);
      };
    }
    return new Promise((resolve) => {
      this.waiting.set(`${op}:${record.id}`, resolve);
      this.worker.postMessage({ op, id: record.id, file: record.file, ...extra });
    });
  },
};

// ---------------------------------------------------------------- checking
const kept = () => (selection && selection.mode === "photos" ? selection.records.filter((r) => !r.removed) : []);
const isBad = (r) => r.problems.some((p) => p.level === "error");
const hasWarning = (r) => r.problems.some((p) => p.level === "warning");

function zipChoice(zips, others, folder, problems, add) {
  if (zips.length > 1 || others) {
    add("error", "Choose either one zip or the photos themselves, not both.");
    return { mode: "zip", photos: 0, size: 0, folder, problems };
  }
  const zipFile = zips[0].file;
  return { mode: "zip", zipFile, photos: 0, size: zipFile.size, folder: zipFile.name.replace(/\.zip$/i, ""), problems,
    fingerprint: fingerprint([zipFile.name, zipFile.size, zipFile.lastModified]) };
}

async function examine(items, gen) {
  const problems = [];
  const add = (level, text) => problems.push({ level, text });
  const usable = items.filter(({ path }) => !IGNORED.test(path));
  const ignored = items.length - usable.length;
  if (ignored) add("info", `${ignored} hidden or system file(s) left out.`);
  const folder = (items.find((i) => i.path.includes("/")) || { path: "" }).path.split("/")[0];

  const zips = usable.filter(({ file }) => /\.zip$/i.test(file.name));
  if (zips.length) {
    const sel = zipChoice(zips, usable.length - zips.length, folder, problems, add);
    if (sel.zipFile) {
      let names = [];
      try { names = await zipEntryNames(sel.zipFile); } catch (err) { add("error", err.message); }
      sel.photos = names.filter((n) => !IGNORED.test(n) && PHOTO_TYPES[n.split(".").pop().toLowerCase()]).length;
      if (names.length && !sel.photos) add("error", "The zip contains no JPEG or PNG photos.");
    }
    return sel;
  }

  const skipped = [];
  const records = [];
  for (const { file, path } of usable) {
    const kind = PHOTO_TYPES[file.name.split(".").pop().toLowerCase()];
    if (!kind) { skipped.push(file.name); continue; }
    records.push({ id: nextId++, name: file.name, path, file, kind, problems: [], removed: false });
  }
  if (skipped.length) {
    const heic = skipped.filter((n) => /\.(heic|heif)$/i.test(n)).length;
    const list = skipped.slice(0, 3).join(", ") + (skipped.length > 3 ? ` and ${skipped.length - 3} more` : "");
    add("warning", `${skipped.length} file(s) that are not JPEG or PNG will be left out: ${list}.` +
      (heic ? " Export HEIC photos as JPEG (on an iPhone: Settings → Camera → Formats → Most Compatible)." : ""));
  }
  const sel = { mode: "photos", records, folder, problems, checking: "hash", checked: 0 };
  selection = sel;
  showChecking(`Reading ${records.length} file(s): type, size and duplicates`, 0, records.length);

  // Blocking checks: one file at a time in the worker.
  for (const record of records) {
    if (gen !== generation) return null;
    if (record.file.size === 0) record.problems.push({ level: "error", kind: "empty", text: "the file is empty" });
    else {
      const info = await checker.run("hash", record);
      Object.assign(record, { sha256: info.sha256, crc: info.crc, width: info.width, height: info.height });
      if (info.error) record.problems.push({ level: "error", kind: "unreadable", text: `cannot be read: ${info.error}` });
      else if (info.kind !== record.kind) record.problems.push({ level: "error", kind: "type", text: "named like a photo, but its content is not JPEG or PNG" });
      else if (record.file.size > LIMITS.maxFileSize) record.problems.push({ level: "error", kind: "size", text: `${formatBytes(record.file.size)} is over the ${formatBytes(LIMITS.maxFileSize)} a photo may have` });
      else if (info.width * info.height > LIMITS.maxPixels) record.problems.push({ level: "error", kind: "size", text: `${info.width}×${info.height} is over ${LIMITS.maxPixels / 1e6} MP` });
      else if (info.width && info.width * info.height < LIMITS.minPixels) record.problems.push({ level: "error", kind: "size", text: `${info.width}×${info.height} is ${(info.width * info.height / 1e6).toFixed(2)} MP, less than ${LIMITS.minPixels / 1e6} MP` });
    }
    if (gen !== generation) return null;
    sel.checked++;
    showChecking(`Reading files: ${sel.checked} of ${records.length} (type, size and duplicates)`, selection.checked, records.length);
  }
  markDuplicates(records, add);
  sel.checking = "measure";
  return sel;
}

function markDuplicates(records, add) {
  // Content first: the same bytes under two names is a copy. The same name
  // with the same bytes is one file chosen twice: it is dropped quietly.
  const key = (r) => r.sha256 || `${r.file.size}:${r.crc}`;
  const byContent = new Map();
  const byName = new Map();
  let twice = 0;
  for (const record of records) {
    if (record.problems.length) continue;
    const first = byContent.get(key(record));
    if (first && first.name.toLowerCase() === record.name.toLowerCase()) { record.removed = true; twice++; continue; }
    if (first) {
      record.problems.push({ level: "error", kind: "duplicate", text: `identical to ${first.name} (the same photo under another name)`, same: first.name });
      first.copies = [...(first.copies || []), record.name];
      continue;
    }
    byContent.set(key(record), record);
    const named = byName.get(record.name.toLowerCase());
    if (named) {
      record.problems.push({ level: "error", kind: "name", text: `another, different photo is also named ${record.name} (${named.path}); rename one` });
      continue;
    }
    byName.set(record.name.toLowerCase(), record);
  }
  if (twice) add("info", `${twice} file(s) chosen twice (same name and content) counted once.`);
}

async function measureAll(gen) {
  const records = selection.records.filter((r) => !r.problems.length);
  let done = 0;
  const measured = [];
  for (const record of records) {
    if (gen !== generation) return;
    if (!record.removed) {
      const result = await checker.run("measure", record, { width: record.width, height: record.height });
      if (gen !== generation) return;
      if (result.error) {
        record.problems.push({ level: "error", kind: "decode", text: `cannot be decoded: ${result.error}` });
      } else {
        record.metrics = result;
        measured.push({ id: record.id, sharpness: result.sharpness });
        record.problems.push(...exposureIssues(result));
      }
    }
    done++;
    showChecking(`Checking sharpness and exposure: ${done} of ${records.length} (warnings only; you can upload meanwhile)`, done, records.length);
    scheduleRender();
  }
  if (gen !== generation) return;
  const blur = blurred(measured);
  for (const record of records) {
    if (blur.has(record.id)) {
      record.problems.push({ level: "warning", kind: "blur", text: `blurred: sharpness is ${blur.get(record.id)}% of the set's median; retake it or leave it out` });
    }
  }
  selection.checking = null;
  showChecking(null);
  render();
}

function showChecking(text, done = 0, total = 0) {
  $("checking").hidden = !text;
  if (!text) return;
  $("checking-text").textContent = text;
  $("checking-bar").style.width = `${total ? Math.round((done / total) * 100) : 0}%`;
}

function setProblems(photos, size, limits) {
  const out = [];
  const add = (level, text) => out.push({ level, text });
  if (photos && photos < MIN_PHOTOS) add("error", `At least ${MIN_PHOTOS} photos are needed; ${photos} chosen.`);
  else if (photos && photos < FEW_PHOTOS) add("warning", `Only ${photos} photos: models usually need ${FEW_PHOTOS} or more, taken all around the object.`);
  if (photos > limits.limit_photos) add("error", `${photos} photos chosen; your token allows at most ${limits.limit_photos} per project.`);
  if (size > limits.limit_filesize) add("error", `The upload would be ${formatBytes(size)}; your token allows ${formatBytes(limits.limit_filesize)} per project. Choose fewer or smaller photos.`);
  if (size > ZIP_LIMIT) add("error", "The upload would be over 4 GB; split the set into smaller projects.");
  if (!limits.public_token && size > limits.credit) add("error", `The upload needs ${formatBytes(size)} of credit; you have ${formatBytes(limits.credit)}.`);
  if (limits.public_token && limits.daily_quota !== null && size > limits.credit) add("error", `Today's public quota has ${formatBytes(limits.credit)} left; this upload needs ${formatBytes(size)}.`);
  return out;
}

/** What would be sent now: photo count, zip size and entries (sorted, as zipped). */
function plan() {
  if (selection.mode === "zip") return { photos: selection.photos, size: selection.size, entries: [] };
  const entries = kept().filter((r) => !isBad(r))
    .sort((a, b) => (a.name < b.name ? -1 : 1))
    .map((r) => ({ name: r.name, file: r.file, crc: r.crc }));
  return { photos: entries.length, size: zipSize(entries), entries };
}

// One line per kind of bad file above the per-file rows, so a long list still
// says at a glance what is wrong.
const BAD_KINDS = {
  type: "are named like photos but their content is not JPEG or PNG",
  duplicate: "are copies of another photo under another name",
  name: "are different photos sharing a name",
  size: "are outside the size limits",
};
function badSummary(bad) {
  const groups = new Map();
  for (const record of bad) {
    const kind = record.problems.find((p) => p.level === "error").kind;
    groups.set(kind, [...(groups.get(kind) || []), record.name]);
  }
  return [...groups].map(([kind, names]) => ({
    level: "error",
    text: `${names.length} file(s) ${BAD_KINDS[kind] || "cannot be used"}: ${names.slice(0, 3).join(", ")}${names.length > 3 ? ` and ${names.length - 3} more` : ""}.`,
  }));
}

// ---------------------------------------------------------------- rendering
let renderQueued = false;
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => { renderQueued = false; render(); });
}

function render() {
  const box = $("selection");
  if (!selection) { box.hidden = true; button.disabled = true; $("upload-blocked").hidden = true; thumbnails.clear(); return; }
  box.hidden = false;
  const hashing = selection.checking === "hash";
  const { photos, size } = plan();
  const records = kept();
  const bad = records.filter(isBad);
  const warned = records.filter((r) => !isBad(r) && hasWarning(r));
  const problems = [...selection.problems, ...badSummary(bad), ...(hashing ? [] : setProblems(photos, size, selection.limits || config))];
  if (hashing) $("summary").textContent = "Checking…";
  else if (selection.mode === "zip") $("summary").textContent = `${selection.zipFile ? selection.zipFile.name : "zip"}: ${photos} photos, ${formatBytes(size)}`;
  else $("summary").textContent = `${photos} photos, ${formatBytes(size)} to upload` + (bad.length ? ` · ${bad.length} bad file(s) must be removed or skipped first` : "");

  $("issues").replaceChildren(...problems.map((p) => el("li", `issue--${p.level}`, p.text)));
  $("skip-bad").hidden = hashing || busy || !bad.length;
  $("skip-bad").textContent = `Skip the bad ones (${bad.length})`;
  $("skip-warned").hidden = hashing || busy || !warned.length;
  $("skip-warned").textContent = `Also leave out the ${warned.length} photo(s) with warnings`;
  $("clear-selection").disabled = busy;
  renderFileProblems(hashing ? [] : [...bad, ...warned]);
  renderThumbs(hashing ? [] : records.filter((r) => !isBad(r)));

  const blocked = hashing || !photos || problems.some((p) => p.level === "error") || bad.length > 0;
  button.disabled = blocked || busy;
  $("upload-blocked").hidden = !bad.length || busy;
  $("upload-blocked").textContent = `Remove the ${bad.length} bad file(s) above, or press “Skip the bad ones”.`;
  if (!nameInput.value.trim()) {
    const now = new Date();
    const stamp = `${now.getFullYear()}-${String(now.getMonth() + 1).padStart(2, "0")}-${String(now.getDate()).padStart(2, "0")}`;
    nameInput.value = `${stamp} ${selection.folder || "scan"}`.trim();
  }
}

function removeButton(record, label) {
  const remove = el("button", "btn btn--small file-problem__remove", label);
  remove.type = "button";
  remove.dataset.remove = String(record.id);
  remove.setAttribute("aria-label", `Remove ${record.name}`);
  remove.disabled = busy;
  return remove;
}

function renderFileProblems(records) {
  $("file-problems").replaceChildren(...records.map((record) => {
    const row = el("li", `file-problem file-problem--${isBad(record) ? "error" : "warning"}`);
    row.dataset.name = record.name;
    const text = el("div", "file-problem__text");
    text.append(el("strong", "", record.name), el("span", "", ` — ${record.problems.filter((p) => p.level !== "info").map((p) => p.text).join("; ")}`));
    if (record.copies) text.append(el("span", "", ` (copies: ${record.copies.join(", ")})`));
    row.append(text, removeButton(record, "Remove"));
    return row;
  }));
}

function renderThumbs(records) {
  $("thumbs-summary").textContent = `Photos to send (${records.length})`;
  const list = $("thumbs");
  const have = new Map([...list.children].map((li) => [Number(li.dataset.id), li]));
  const wanted = records.slice().sort((a, b) => (a.name < b.name ? -1 : 1));
  const nodes = wanted.map((record) => {
    let li = have.get(record.id);
    if (!li) {
      li = el("li", "thumb");
      li.dataset.id = String(record.id);
      li.dataset.name = record.name;
      const canvas = el("canvas", "thumb__img");
      canvas.width = 192; canvas.height = 192;
      canvas.setAttribute("aria-hidden", "true");
      li.append(canvas, el("span", "thumb__name", record.name), removeButton(record, "×"));
      thumbnails.watch(canvas, record.file);
    }
    const remove = li.lastChild;
    if (remove.disabled !== busy) remove.disabled = busy;
    const title = record.problems.map((p) => p.text).join("; ") || record.name;
    if (li.title !== title) {
      li.title = title;
      li.classList.toggle("thumb--warning", hasWarning(record));
    }
    return li;
  });
  const wantedIds = new Set(wanted.map((r) => r.id));
  for (const [id, li] of have) if (!wantedIds.has(id)) thumbnails.unwatch(li.querySelector("canvas"));
  // Re-insert only when the set or order changed: a warning arriving per photo
  // must not relayout 500 tiles.
  const same = nodes.length === list.children.length && nodes.every((node, i) => list.children[i] === node);
  if (!same) list.replaceChildren(...nodes);
}

// ---------------------------------------------------------------- server calls
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
  const gen = ++generation;
  selection = null;
  thumbnails.clear();
  $("summary").textContent = "Checking…";
  $("issues").replaceChildren();
  $("file-problems").replaceChildren();
  $("selection").hidden = false;
  const limits = limitsNow();
  const chosen = await examine(items, gen);
  if (!chosen || gen !== generation) return;
  selection = chosen;
  selection.limits = await limits;
  render();
  const pending = loadPending();
  if (pending && pendingFingerprint() === pending.fingerprint) {
    $("resume-text").textContent = `These are the same files: press Upload to continue “${pending.name}”.`;
    nameInput.value = pending.name;
  }
  if (selection.mode === "photos") measureAll(gen);
}

function pendingFingerprint() {
  if (selection.mode === "zip") return selection.fingerprint;
  return fingerprint(plan().entries.map((e) => `${e.name}|${e.file.size}|${e.file.lastModified}`));
}

function removeRecords(predicate) {
  if (busy || !selection || selection.mode !== "photos") return;
  for (const record of selection.records) if (!record.removed && predicate(record)) record.removed = true;
  render();
}

// ---------------------------------------------------------------- progress display
const progress = {
  total: 0, done: 0, samples: [],
  show(phase) { $("progress").hidden = false; $("progress").classList.remove("is-error", "is-cancelled"); $("progress-phase").textContent = phase; },
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

// ---------------------------------------------------------------- pause and cancel
class Cancelled extends Error {}
const control = {
  paused: false, cancelled: false, xhr: null, wake: null,
  reset() { Object.assign(this, { paused: false, cancelled: false, xhr: null, wake: null }); },
  /** Wait here while paused; throw once cancelled. */
  async gate() {
    while (this.paused && !this.cancelled) await new Promise((resolve) => { this.wake = resolve; });
    if (this.cancelled) throw new Cancelled();
  },
  pause() {
    this.paused = true;
    if (this.xhr) this.xhr.abort(); // the server keeps what it got; the 409 answer says how much
    $("pause-upload").textContent = "Resume";
    progress.show("Paused");
    progress.samples = [];
    $("progress-speed").textContent = "";
    $("progress-eta").textContent = "";
    progress.note("Nothing is being sent. Press Resume to continue from where it stopped.");
  },
  resume() {
    this.paused = false;
    $("pause-upload").textContent = "Pause";
    progress.show(this.phase);
    progress.note("");
    if (this.wake) this.wake();
  },
  cancel() {
    this.cancelled = true;
    if (this.xhr) this.xhr.abort();
    if (this.wake) this.wake();
  },
};

// ---------------------------------------------------------------- sending
function sendChunk(url, offset, body, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    control.xhr = xhr;
    xhr.open("PATCH", url);
    xhr.timeout = 180_000;
    xhr.setRequestHeader("Upload-Offset", String(offset));
    xhr.setRequestHeader("Content-Type", "application/offset+octet-stream");
    xhr.setRequestHeader("X-CSRFToken", csrf);
    xhr.upload.onprogress = (e) => onProgress(e.loaded);
    xhr.onload = () => {
      control.xhr = null;
      let data = null;
      try { data = JSON.parse(xhr.responseText || "null"); } catch { data = null; }
      resolve({ status: xhr.status, offset: Number(xhr.getResponseHeader("Upload-Offset")), data });
    };
    xhr.onerror = () => { control.xhr = null; reject(new Error("network")); };
    xhr.ontimeout = () => { control.xhr = null; reject(new Error("timeout")); };
    xhr.onabort = () => { control.xhr = null; reject(new Error("aborted")); };
    xhr.send(body);
  });
}

async function serverOffset(url) {
  try {
    const head = await fetch(url, { method: "HEAD", credentials: "same-origin" });
    const offset = Number(head.headers.get("Upload-Offset"));
    return head.ok && Number.isFinite(offset) ? offset : null;
  } catch { return null; } // Still offline: the next PATCH will tell.
}

async function uploadParts(project, zip, partSize) {
  const received = new Map(project.parts.map((p) => [p.index, p.received]));
  const partLength = (i) => Math.min(partSize, zip.size - i * partSize);
  const doneBytes = () => [...received].reduce((sum, [i, got]) => sum + Math.min(got, partLength(i)), 0);
  progress.samples = [];
  progress.update(doneBytes(), zip.size);
  for (const part of project.parts) {
    const start = part.index * partSize;
    const length = partLength(part.index);
    let offset = received.get(part.index) || 0;
    let attempt = 0;
    let resync = false;
    while (offset < length) {
      await control.gate();
      if (resync) {
        // Asked after the pause, not at it: the aborted chunk has settled by now.
        resync = false;
        const got = await serverOffset(part.upload_url);
        if (got !== null) { offset = got; received.set(part.index, offset); }
        if (offset >= length) break;
      }
      const end = Math.min(length, offset + config.chunk_size);
      const before = doneBytes();
      const body = await zip.slice(start + offset, start + end);
      // Compute the next entries' CRCs while this chunk travels.
      zip.prefetch(start + end, 4).catch(() => {});
      let result;
      try {
        result = await sendChunk(part.upload_url, offset, body, (loaded) => progress.update(before + loaded, zip.size));
      } catch (err) {
        result = { status: 0, error: err };
      }
      if (control.cancelled) throw new Cancelled();
      if (result.status === 0 && control.paused) { resync = true; continue; }
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
          if (!control.paused) progress.note(`Connection problem (${result.status || "no answer"}); retrying in ${left} s (attempt ${attempt} of ${MAX_ATTEMPTS}).`);
          await sleep(1000);
          if (control.cancelled) throw new Cancelled();
        }
        const got = await serverOffset(part.upload_url);
        if (got !== null) { offset = got; received.set(part.index, offset); }
      } else {
        const message = (result.data && (result.data.error || result.data.detail)) || `The server refused the upload (${result.status}).`;
        throw new Error(message);
      }
      progress.update(doneBytes(), zip.size);
    }
  }
}

function loadPending() {
  try { return JSON.parse(localStorage.getItem(STORE_KEY) || "null"); } catch { return null; }
}
function savePending(value) {
  try { value ? localStorage.setItem(STORE_KEY, JSON.stringify(value)) : localStorage.removeItem(STORE_KEY); } catch { /* private mode */ }
}

/** Delete a project the person cancelled while uploading: never processed, so refunded. */
async function abandon(project) {
  progress.show("Cancelling");
  progress.note("");
  try {
    await api("DELETE", `${config.api_projects}${project.id}/`);
  } catch (err) {
    progress.fail(`The upload stopped, but the project could not be deleted (${err.message}). Delete “${project.name}” from your projects to get its credit back.`);
    return;
  }
  savePending(null);
  const limits = await limitsNow();
  $("progress").classList.add("is-cancelled");
  $("progress-speed").textContent = "";
  $("progress-eta").textContent = "";
  $("progress-phase").textContent = "Upload cancelled";
  progress.note(`Nothing was processed, so “${project.name}” was deleted and the ${formatBytes(project.filesize)} it was charged have been refunded` +
    (limits.public_token ? " to today's quota." : `: your credit is ${formatBytes(limits.credit)} again.`) + " Choose photos to start again.");
}

async function upload(event) {
  event.preventDefault();
  if (!selection || busy || button.disabled) return;
  const name = nameInput.value.trim();
  if (!name) { nameInput.focus(); return; }
  busy = true;
  control.reset();
  render();
  progress.show("Checking your credit");
  $("progress").scrollIntoView({ block: "nearest", behavior: "smooth" });
  let project = null;
  try {
    const limits = await limitsNow();
    const { photos, size, entries } = plan();
    const blocking = setProblems(photos, size, limits).filter((p) => p.level === "error");
    if (blocking.length) throw new Error(blocking.map((p) => p.text).join(" "));

    // A chosen zip is sent as it is; photos are zipped while they are sent.
    const zip = selection.mode === "zip" ? selection.zipFile : new StreamingZip(entries);
    const partSize = config.part_max;
    const parts = Math.max(1, Math.ceil(zip.size / partSize));
    const consent = form.querySelector("input[name=research_consent]:checked, input[type=hidden][name=research_consent]");
    const preset = form.querySelector("input[name=preset]:checked");
    const print = pendingFingerprint();

    const pending = loadPending();
    if (pending && pending.fingerprint === print && pending.size === zip.size) {
      progress.show("Asking the server what it already has");
      try {
        project = await api("GET", `${config.api_projects}${pending.id}/`);
        if (project.status !== "created" || project.filesize !== zip.size) project = null;
      } catch { project = null; }
    }
    if (!project) {
      progress.show("Creating the project");
      project = await api("POST", config.api_projects, {
        name, photos, filesize: zip.size, parts,
        preset: preset ? preset.value : "balanced",
        research_consent: consent ? consent.value === "yes" : false,
      });
    }
    savePending({ id: project.id, name: project.name, size: zip.size, photos, fingerprint: print, at: Date.now() });
    $("resume-banner").hidden = true;
    control.phase = `Uploading “${project.name}”`;
    progress.show(control.phase);
    $("upload-controls").hidden = false;
    $("leave-note").hidden = false;
    await uploadParts(project, zip, partSize);
    $("upload-controls").hidden = true;

    progress.show("Checking the photos on the server");
    progress.note("Every byte arrived; the server now checks the zip and queues the project.");
    await api("POST", `${config.api_projects}${project.id}/start/`);
    savePending(null);
    progress.show("Started");
    window.location.assign(config.project_page.replace("00000000-0000-0000-0000-000000000000", project.id));
  } catch (err) {
    $("upload-controls").hidden = true;
    $("leave-note").hidden = true;
    if (err instanceof Cancelled && project) await abandon(project);
    else progress.fail(err.message || String(err));
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
// Enter or Space on the drop zone itself opens the chooser, as a click would.
dropzone.addEventListener("keydown", (e) => {
  if (e.target !== dropzone || (e.key !== "Enter" && e.key !== " ")) return;
  e.preventDefault();
  $("pick-files").click();
});
$("choose-files").addEventListener("click", () => $("pick-files").click());
$("choose-folder").addEventListener("click", () => $("pick-folder").click());
for (const id of ["pick-files", "pick-folder"]) {
  $(id).addEventListener("change", (e) => { choose(filesFromInput(e.target)); e.target.value = ""; });
}
$("clear-selection").addEventListener("click", () => { if (!busy) { generation++; selection = null; render(); } });
$("skip-bad").addEventListener("click", () => removeRecords(isBad));
$("skip-warned").addEventListener("click", () => removeRecords((r) => isBad(r) || hasWarning(r)));
$("selection").addEventListener("click", (e) => {
  const target = e.target.closest("[data-remove]");
  if (target) removeRecords((r) => r.id === Number(target.dataset.remove));
});
$("pause-upload").addEventListener("click", () => (control.paused ? control.resume() : control.pause()));
$("cancel-upload").addEventListener("click", () => control.cancel());
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
