// A small zip writer and reader for the upload page, with no dependencies.
//
// Photos are already compressed, so entries are STORED: every size and offset
// is known from the file sizes alone, before a byte is read. StreamingZip hands
// out any byte range of the archive as a Blob made of File slices plus small
// headers, computing each entry's CRC only when a range first needs its header,
// so the upload starts at once and a resumed upload reads only what it sends.
// The same files always give the same bytes (sorted names, their own
// timestamps), which is what lets an upload resume after a page reload.

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
const LOCAL = 30;
const CENTRAL = 46;
const END = 22;

/** CRC-32 of bytes, continuing from `crc` (pass the previous result's raw state). */
export function crc32Update(crc, bytes) {
  for (let i = 0; i < bytes.length; i++) crc = CRC_TABLE[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
  return crc;
}
export const crc32Final = (crc) => (crc ^ 0xffffffff) >>> 0;

async function crc32(blob) {
  let crc = 0xffffffff;
  for (let start = 0; start < blob.size; start += SLICE) {
    crc = crc32Update(crc, new Uint8Array(await blob.slice(start, start + SLICE).arrayBuffer()));
  }
  return crc32Final(crc);
}

function dosDateTime(ms) {
  const d = new Date(ms || Date.UTC(1980, 0, 1));
  const year = Math.max(1980, d.getFullYear());
  const time = (d.getHours() << 11) | (d.getMinutes() << 5) | Math.floor(d.getSeconds() / 2);
  const date = ((year - 1980) << 9) | ((d.getMonth() + 1) << 5) | d.getDate();
  return { time, date };
}

/** Size of the zip StreamingZip makes of these entries (no reading needed). */
export function zipSize(entries) {
  const enc = new TextEncoder();
  let size = END;
  for (const { name, file } of entries) size += LOCAL + CENTRAL + 2 * enc.encode(name).length + file.size;
  return size;
}

/**
 * A stored zip of [{name, file, crc?}] laid out up front and read by range.
 *
 * A `crc` already known (the page's checks compute it while hashing) is used
 * as is; otherwise it is computed the first time a range touches the entry.
 */
export class StreamingZip {
  constructor(entries) {
    const enc = new TextEncoder();
    let offset = 0;
    this.entries = entries.map((entry) => {
      const nameBytes = enc.encode(entry.name);
      const item = { ...entry, nameBytes, offset, crcPromise: null, ...dosDateTime(entry.file.lastModified) };
      if (Number.isInteger(entry.crc)) item.crcPromise = Promise.resolve(entry.crc);
      offset += LOCAL + nameBytes.length + entry.file.size;
      return item;
    });
    this.centralOffset = offset;
    this.centralSize = this.entries.reduce((sum, e) => sum + CENTRAL + e.nameBytes.length, 0);
    this.size = offset + this.centralSize + END;
    this.central = null;
  }

  crcOf(index) {
    const entry = this.entries[index];
    if (!entry.crcPromise) entry.crcPromise = crc32(entry.file);
    return entry.crcPromise;
  }

  /** The bytes [start, end) as a Blob; only the headers in that range are built. */
  async slice(start, end) {
    end = Math.min(end, this.size);
    const pieces = [];
    const take = (blobOrBytes, at, length) => {
      // Keep the part of [at, at + length) that falls inside [start, end).
      const from = Math.max(start, at), to = Math.min(end, at + length);
      if (from >= to) return;
      const piece = from === at && to === at + length ? blobOrBytes : blobOrBytes.slice(from - at, to - at);
      pieces.push(piece);
    };
    for (let i = this.firstEntryAt(start); i < this.entries.length; i++) {
      const entry = this.entries[i];
      if (entry.offset >= end) break;
      const headerLength = LOCAL + entry.nameBytes.length;
      if (entry.offset < end && entry.offset + headerLength > start) {
        take(await this.localHeader(i), entry.offset, headerLength);
      }
      take(entry.file, entry.offset + headerLength, entry.file.size);
    }
    if (end > this.centralOffset) {
      take(await this.centralDirectory(), this.centralOffset, this.size - this.centralOffset);
    }
    return new Blob(pieces, { type: "application/octet-stream" });
  }

  /** Compute the CRCs of the entries from `start` on, ahead of the sender. */
  async prefetch(start, count) {
    for (let i = this.firstEntryAt(start), n = 0; i < this.entries.length && n < count; i++, n++) await this.crcOf(i);
  }

  firstEntryAt(position) {
    let lo = 0, hi = this.entries.length - 1, found = this.entries.length;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1, entry = this.entries[mid];
      if (entry.offset + LOCAL + entry.nameBytes.length + entry.file.size > position) { found = mid; hi = mid - 1; } else lo = mid + 1;
    }
    return found;
  }

  async localHeader(index) {
    const entry = this.entries[index];
    const crc = await this.crcOf(index);
    const bytes = new Uint8Array(LOCAL + entry.nameBytes.length);
    const view = new DataView(bytes.buffer);
    view.setUint32(0, 0x04034b50, true);
    view.setUint16(4, 20, true); // version needed
    view.setUint16(6, 0x0800, true); // UTF-8 names
    view.setUint16(8, 0, true); // stored
    view.setUint16(10, entry.time, true);
    view.setUint16(12, entry.date, true);
    view.setUint32(14, crc, true);
    view.setUint32(18, entry.file.size, true);
    view.setUint32(22, entry.file.size, true);
    view.setUint16(26, entry.nameBytes.length, true);
    bytes.set(entry.nameBytes, LOCAL);
    return bytes;
  }

  async centralDirectory() {
    if (this.central) return this.central;
    const bytes = new Uint8Array(this.centralSize + END);
    const view = new DataView(bytes.buffer);
    let p = 0;
    for (let i = 0; i < this.entries.length; i++) {
      const entry = this.entries[i];
      const crc = await this.crcOf(i);
      view.setUint32(p, 0x02014b50, true);
      view.setUint16(p + 4, 0x0314, true); // made by: Unix, 2.0
      view.setUint16(p + 6, 20, true);
      view.setUint16(p + 8, 0x0800, true);
      view.setUint16(p + 10, 0, true);
      view.setUint16(p + 12, entry.time, true);
      view.setUint16(p + 14, entry.date, true);
      view.setUint32(p + 16, crc, true);
      view.setUint32(p + 20, entry.file.size, true);
      view.setUint32(p + 24, entry.file.size, true);
      view.setUint16(p + 28, entry.nameBytes.length, true);
      view.setUint32(p + 38, (0o100644 << 16) >>> 0, true); // a regular file
      view.setUint32(p + 42, entry.offset, true);
      bytes.set(entry.nameBytes, p + CENTRAL);
      p += CENTRAL + entry.nameBytes.length;
    }
    view.setUint32(p, 0x06054b50, true);
    view.setUint16(p + 8, this.entries.length, true);
    view.setUint16(p + 10, this.entries.length, true);
    view.setUint32(p + 12, this.centralSize, true);
    view.setUint32(p + 16, this.centralOffset, true);
    this.central = bytes;
    return bytes;
  }
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
