// A small zip writer and reader for the upload page, with no dependencies.
//
// Photos are already compressed, so entries are STORED: the zip is a Blob made
// of the File objects themselves plus small headers. Nothing is copied into
// memory but one slice at a time for the CRC, and the same files always give
// the same bytes (sorted names, their own timestamps), which is what lets an
// upload resume after a page reload once the person selects them again.

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

export const ZIP_LIMIT = 0xffffffff - 1_000_000; // No ZIP64: stay well under 4 GiB.
const SLICE = 4 * 1024 * 1024;

async function crc32(blob) {
  let crc = 0xffffffff;
  for (let start = 0; start < blob.size; start += SLICE) {
    const bytes = new Uint8Array(await blob.slice(start, start + SLICE).arrayBuffer());
    for (let i = 0; i < bytes.length; i++) crc = CRC_TABLE[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
  }
  return (crc ^ 0xffffffff) >>> 0;
}

function dosDateTime(ms) {
  const d = new Date(ms || Date.UTC(1980, 0, 1));
  const year = Math.max(1980, d.getFullYear());
  const time = (d.getHours() << 11) | (d.getMinutes() << 5) | Math.floor(d.getSeconds() / 2);
  const date = ((year - 1980) << 9) | ((d.getMonth() + 1) << 5) | d.getDate();
  return { time, date };
}

/** Size of the zip that zipFiles() will make of these entries (no reading needed). */
export function zipSize(entries) {
  const enc = new TextEncoder();
  let size = 22;
  for (const { name, file } of entries) {
    const n = enc.encode(name).length;
    size += 30 + n + file.size + 46 + n;
  }
  return size;
}

/**
 * Make a stored zip of [{name, file}] as a Blob; onProgress(done, total) while hashing.
 */
export async function zipFiles(entries, onProgress = () => {}) {
  const enc = new TextEncoder();
  const pieces = [];
  const central = [];
  let offset = 0;
  const total = entries.reduce((sum, e) => sum + e.file.size, 0);
  let hashed = 0;
  for (const { name, file } of entries) {
    const nameBytes = enc.encode(name);
    const crc = await crc32(file);
    hashed += file.size;
    onProgress(hashed, total);
    const { time, date } = dosDateTime(file.lastModified);
    const local = new DataView(new ArrayBuffer(30));
    local.setUint32(0, 0x04034b50, true);
    local.setUint16(4, 20, true); // version needed
    local.setUint16(6, 0x0800, true); // UTF-8 names
    local.setUint16(8, 0, true); // stored
    local.setUint16(10, time, true);
    local.setUint16(12, date, true);
    local.setUint32(14, crc, true);
    local.setUint32(18, file.size, true);
    local.setUint32(22, file.size, true);
    local.setUint16(26, nameBytes.length, true);
    local.setUint16(28, 0, true);
    pieces.push(local.buffer, nameBytes, file);
    const cd = new DataView(new ArrayBuffer(46));
    cd.setUint32(0, 0x02014b50, true);
    cd.setUint16(4, 0x0314, true); // made by: Unix, 2.0
    cd.setUint16(6, 20, true);
    cd.setUint16(8, 0x0800, true);
    cd.setUint16(10, 0, true);
    cd.setUint16(12, time, true);
    cd.setUint16(14, date, true);
    cd.setUint32(16, crc, true);
    cd.setUint32(20, file.size, true);
    cd.setUint32(24, file.size, true);
    cd.setUint16(28, nameBytes.length, true);
    cd.setUint32(38, (0o100644 << 16) >>> 0, true); // a regular file
    cd.setUint32(42, offset, true);
    central.push(cd.buffer, nameBytes);
    offset += 30 + nameBytes.length + file.size;
  }
  const cdSize = central.reduce((sum, p) => sum + p.byteLength, 0);
  const end = new DataView(new ArrayBuffer(22));
  end.setUint32(0, 0x06054b50, true);
  end.setUint16(8, entries.length, true);
  end.setUint16(10, entries.length, true);
  end.setUint32(12, cdSize, true);
  end.setUint32(16, offset, true);
  return new Blob([...pieces, ...central, end.buffer], { type: "application/zip" });
}

/** The entry names of a zip the person chose, read from its central directory only. */
export async function zipEntryNames(file) {
  const tailSize = Math.min(file.size, 65557);
  const tail = new DataView(await file.slice(file.size - tailSize).arrayBuffer());
  let eocd = -1;
  for (let i = tail.byteLength - 22; i >= 0; i--) {
    if (tail.getUint32(i, true) === 0x06054b50) { eocd = i; break; }
  }
  if (eocd < 0) throw new Error("This file is not a zip (or it is damaged).");
  const count = tail.getUint16(eocd + 10, true);
  const cdSize = tail.getUint32(eocd + 12, true);
  const cdOffset = tail.getUint32(eocd + 16, true);
  if (cdOffset === 0xffffffff || count === 0xffff) throw new Error("ZIP64 archives are not supported here; upload the photos instead.");
  const cd = new DataView(await file.slice(cdOffset, cdOffset + cdSize).arrayBuffer());
  const dec = new TextDecoder();
  const names = [];
  let p = 0;
  for (let i = 0; i < count && p + 46 <= cd.byteLength; i++) {
    if (cd.getUint32(p, true) !== 0x02014b50) throw new Error("The zip's directory is damaged.");
    const n = cd.getUint16(p + 28, true), m = cd.getUint16(p + 30, true), k = cd.getUint16(p + 32, true);
    names.push(dec.decode(new Uint8Array(cd.buffer, cd.byteOffset + p + 46, n)));
    p += 46 + n + m + k;
  }
  return names;
}
