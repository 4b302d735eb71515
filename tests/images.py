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
