"""Photos and zips made at test time (nothing binary is committed)."""

import io
import random
import struct
import zipfile
import zlib

from PIL import Image, ImageDraw


def jpeg_bytes(
    width: int = 64, height: int = 48, seed: int = 0, quality: int = 85
) -> bytes:
    rng = random.Random(seed)
    img = Image.new("RGB", (width, height), tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(img)
    for _ in range(12):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        draw.rectangle(
            (x0, y0, x0 + rng.randrange(1, 20), y0 + rng.randrange(1, 20)),
            fill=tuple(rng.randrange(256) for _ in range(3)),
        )
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality)
    return out.getvalue()


def png_bytes(width: int = 32, height: int = 32, seed: int = 0) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (seed % 256, 80, 160)).save(out, "PNG")
    return out.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG that declares a huge size (a pixel flood)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", idat)
        + chunk(b"IEND", b"")
    )


def zip_bytes(
    files: dict[str, bytes], *, compression: int = zipfile.ZIP_STORED
) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return out.getvalue()


def photo_set(count: int = 3, *, size: tuple[int, int] = (64, 48)) -> dict[str, bytes]:
    return {f"IMG_{i:04d}.jpg": jpeg_bytes(*size, seed=i) for i in range(count)}


def split(data: bytes, part_size: int) -> list[bytes]:
    return [data[i : i + part_size] for i in range(0, len(data), part_size)]


# --- Crafted zips (issue 10): each breaks one rule a zip reader relies on. ---------


def _patch(data: bytes, offset: int, new: bytes) -> bytes:
    return data[:offset] + new + data[offset + len(new) :]


def _first_headers(data: bytes) -> tuple[int, int]:
    """Offsets of the first entry's local header and its central directory record."""
    return data.index(b"PK\x03\x04"), data.index(b"PK\x01\x02")


def crafted_zip(kind: str) -> bytes:
    """A small zip of JPEGs whose first entry, IMG_0000.jpg, is crafted as ``kind``.

    Kinds: encrypted, method9, name_mismatch, bad_magic, bad_crc (a tiny entry).
    """
    files = photo_set(2)
    if kind == "bad_crc":
        files["IMG_0000.jpg"] = jpeg_bytes(8, 8)  # Read whole by the first read.
    data = zip_bytes(files)
    local, central = _first_headers(data)
    if kind == "encrypted":
        flags = struct.unpack_from("<H", data, local + 6)[0] | 0x1
        data = _patch(data, local + 6, struct.pack("<H", flags))
        return _patch(data, central + 8, struct.pack("<H", flags))
    if kind == "method9":
        data = _patch(data, local + 8, struct.pack("<H", 9))
        return _patch(data, central + 10, struct.pack("<H", 9))
    if kind == "name_mismatch":
        return _patch(data, local + 30, b"EVIL")
    if kind == "bad_magic":
        return _patch(data, local, b"PK\x07\x07")
    if kind == "bad_crc":
        crc = struct.unpack_from("<I", data, local + 14)[0] ^ 0xFFFFFFFF
        data = _patch(data, local + 14, struct.pack("<I", crc))
        return _patch(data, central + 16, struct.pack("<I", crc))
    raise ValueError(kind)


def zip_with_directory_of(entries: int) -> bytes:
    """A zip whose (zip64) central directory really holds ``entries`` records."""
    name = b"a.jpg"
    record = (
        struct.pack(
            "<4s6H3L5H2L",
            b"PK\x01\x02",
            20,
            20,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            len(name),
            0,
            0,
            0,
            0,
            0,
            0,
        )
        + name
    )
    directory = record * entries
    eocd64_offset = len(directory)
    eocd64 = struct.pack(
        "<4sQ2H2L4Q",
        b"PK\x06\x06",
        44,
        45,
        45,
        0,
        0,
        entries,
        entries,
        len(directory),
        0,
    )
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, eocd64_offset, 1)
    eocd = struct.pack(
        "<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0
    )
    return directory + eocd64 + locator + eocd


def jpeg_declaring(width: int, height: int) -> bytes:
    """A small JPEG whose frame header (SOF0) claims ``width``×``height`` pixels."""
    data = jpeg_bytes(16, 16)
    sof = data.index(b"\xff\xc0")
    return _patch(data, sof + 5, struct.pack(">HH", height, width))
