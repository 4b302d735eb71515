// The upload page's checks off the main thread: one photo per message.
//   {op: "hash", id, file}    -> {kind, width, height, sha256, crc}
//   {op: "measure", id, file} -> {brightness, sharpness} on a copy <= 1024 px
// The page sends one message at a time, so only one photo is in memory here.

import { LIMITS, imageSize, measure, sniffKind } from "./photo-checks.js";
import { crc32Final, crc32Update } from "./zip.js";

async function hash(file) {
  const bytes = new Uint8Array(await file.arrayBuffer());
  const kind = sniffKind(bytes);
  const size = imageSize(bytes, kind);
  let sha256 = null;
  if (self.crypto && self.crypto.subtle) {
    const digest = new Uint8Array(await self.crypto.subtle.digest("SHA-256", bytes));
    sha256 = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
  }
  const crc = crc32Final(crc32Update(0xffffffff, bytes));
  return { kind, width: size ? size.width : 0, height: size ? size.height : 0, sha256, crc };
}

async function measureFile(file, width, height) {
  const scale = Math.min(1, LIMITS.metricSide / Math.max(width || 1, height || 1));
  const options = { resizeQuality: "medium" };
  if (scale < 1) {
    if (width >= height) options.resizeWidth = Math.round(width * scale);
    else options.resizeHeight = Math.round(height * scale);
  }
  const bitmap = await createImageBitmap(file, options);
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.drawImage(bitmap, 0, 0);
  bitmap.close();
  const { data } = context.getImageData(0, 0, canvas.width, canvas.height);
  return measure(data, canvas.width, canvas.height);
}

self.onmessage = async ({ data }) => {
  const { op, id, file } = data;
  try {
    const result = op === "hash" ? await hash(file) : await measureFile(file, data.width, data.height);
    self.postMessage({ id, op, ...result });
  } catch (err) {
    self.postMessage({ id, op, error: String((err && err.message) || err) });
  }
};
