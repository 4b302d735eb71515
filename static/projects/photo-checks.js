// The per-photo checks openscan-upload runs (uploader/openscan_upload/validate.py),
// with the same thresholds, so the page and the CLI warn about the same photos.

export const LIMITS = {
  minPixels: 300_000, // ResolutionTooSmall (an error in the CLI)
  maxPixels: 100_000_000,
  maxFileSize: 50_000_000,
  blurRatio: 0.35, // Blurry: sharpness below 35 % of the set's median
  darkMean: 40, // Underexposed: mean brightness below 40/255
  brightMean: 215, // Overexposed: mean brightness above 215/255
  metricSide: 1024, // the CLI measures on a copy at most 1024 px on its long side
};

/** "jpeg", "png" or "" from a file's first bytes. */
export function sniffKind(bytes) {
  if (bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return "jpeg";
  if (bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47) return "png";
  return "";
}

/** Pixel size from the PNG header or the JPEG frame header, without decoding. */
export function imageSize(bytes, kind) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (kind === "png" && bytes.length >= 24) return { width: view.getUint32(16), height: view.getUint32(20) };
  if (kind !== "jpeg") return null;
  let p = 2;
  while (p + 9 < bytes.length) {
    if (bytes[p] !== 0xff) { p++; continue; }
    const marker = bytes[p + 1];
    if (marker === 0xff) { p++; continue; }
    if (marker === 0xd8 || marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) { p += 2; continue; }
    const length = view.getUint16(p + 2);
    // SOF0..SOF15 carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) do not.
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      return { width: view.getUint16(p + 7), height: view.getUint16(p + 5) };
    }
    if (marker === 0xda) return null; // the scan began without a frame header
    p += 2 + length;
  }
  return null;
}

/**
 * Mean brightness and variance of the Laplacian of an RGBA image, as Pillow
 * computes them in the CLI: luma "L" with Pillow's integer weights, the kernel
 * [0 1 0; 1 -4 1; 0 1 0] shifted by 128 and clipped to 0..255, and the border
 * pixels copied unfiltered (Pillow's 3×3 filter does that, and they count).
 */
export function measure(rgba, width, height) {
  const gray = new Uint8ClampedArray(width * height);
  let sum = 0;
  for (let i = 0, j = 0; j < gray.length; i += 4, j++) {
    const value = (rgba[i] * 19595 + rgba[i + 1] * 38470 + rgba[i + 2] * 7471 + 0x8000) >> 16;
    gray[j] = value;
    sum += value;
  }
  let n = 0, mean = 0, m2 = 0;
  for (let y = 0, k = 0; y < height; y++) {
    const edgeRow = y === 0 || y === height - 1;
    for (let x = 0; x < width; x++, k++) {
      let v = gray[k];
      if (!edgeRow && x > 0 && x < width - 1) {
        v = gray[k - width] + gray[k + width] + gray[k - 1] + gray[k + 1] - 4 * gray[k] + 128;
        v = v < 0 ? 0 : v > 255 ? 255 : v;
      }
      n++;
      const delta = v - mean;
      mean += delta / n;
      m2 += delta * (v - mean);
    }
  }
  return { brightness: sum / gray.length, sharpness: n ? m2 / n : 0 };
}

/** The per-photo warnings of one measured photo. */
export function exposureIssues(metrics) {
  if (metrics.brightness < LIMITS.darkMean) return [{ level: "warning", kind: "dark", text: `very dark (mean brightness ${Math.round(metrics.brightness)}/255)` }];
  if (metrics.brightness > LIMITS.brightMean) return [{ level: "warning", kind: "bright", text: `very bright (mean brightness ${Math.round(metrics.brightness)}/255)` }];
  return [];
}

/** Names of the photos whose sharpness is under blurRatio × the set's median (needs 3). */
export function blurred(measured) {
  const scores = measured.map((m) => m.sharpness).sort((a, b) => a - b);
  if (scores.length < 3) return new Map();
  const mid = scores.length >> 1;
  const median = scores.length % 2 ? scores[mid] : (scores[mid - 1] + scores[mid]) / 2;
  const out = new Map();
  if (median <= 0) return out;
  for (const m of measured) {
    if (m.sharpness < LIMITS.blurRatio * median) out.set(m.id, Math.round((100 * m.sharpness) / median));
  }
  return out;
}
