"""The OpenScan JSON block written into each photo's EXIF `ImageDescription`.

Tagging works on bytes in memory: the photo's pixels are never re-encoded and
the user's original file is never opened for writing. Only the EXIF segment
(JPEG APP1, PNG eXIf chunk) is replaced. The output depends only on the input
bytes and the block, so a rerun produces the same bytes and the same hashes,
which is what lets an interrupted upload resume.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from .validate import TAG_EXIF_IFD, TAG_IMAGE_DESCRIPTION, ImageInfo

MANIFEST_NAME = "openscan-manifest.json"
BLOCK_KEY = "openscan"
BLOCK_VERSION = 1
TAG_MAKER_NOTE = 0x927C
# A JPEG segment's length field is 16 bits and counts itself.
MAX_APP1_PAYLOAD = 65533
ANGLE_ALIASES = {
    "turntable": "turntable",
    "turntable_angle": "turntable",
    "tilt": "tilt",
    "tilt_angle": "tilt",
    "rotor": "tilt",
    "rotor_angle": "tilt",
}


class TaggingError(Exception):
    """The photo's container could not be parsed to insert the block."""


@dataclass(frozen=True)
class Angles:
    turntable: float | None = None
    tilt: float | None = None


def load_manifest(path: Path) -> dict[str, Angles]:
    """Turntable and tilt angles per photo name from the rig's sidecar manifest.

    Accepted shapes: `{"photos": {"IMG_1.jpg": {"turntable": 12, "tilt": 30}}}`,
    the same mapping without the `photos` wrapper, or a list of objects with a
    `file` (or `name`) key. `rotor` is accepted for `tilt`.

    Raises:
        ValueError: the manifest is not valid JSON or has another shape.
    """
    data = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data, dict) and "photos" in data:
        data = data["photos"]
    entries: dict[str, dict[str, Any]] = {}
    if isinstance(data, dict):
        entries = {
            str(key): value for key, value in data.items() if isinstance(value, dict)
        }
    elif isinstance(data, list):
        for item in data:
            if isinstance(item, dict) and (item.get("file") or item.get("name")):
                entries[str(item.get("file") or item.get("name"))] = item
    else:
        raise ValueError("expected an object or a list")
    angles: dict[str, Angles] = {}
    for name, entry in entries.items():
        values: dict[str, float] = {}
        for key, value in entry.items():
            target = ANGLE_ALIASES.get(str(key).lower())
            if target is not None and isinstance(value, (int, float)):
                values[target] = float(value)
        angles[Path(name).name] = Angles(**values)
    return angles


def build_block(
    project: str, index: int, info: ImageInfo, angles: Angles | None = None
) -> dict[str, Any]:
    """The metadata block for one photo; keys without a value are left out."""
    fields: dict[str, Any] = {
        "v": BLOCK_VERSION,
        "project": project,
        # The original's content hash: stable, unique within the set (duplicates
        # are refused) and lets the server match a photo to the user's file.
        "photo_id": info.sha256[:16],
        "index": index,
        "file": info.name,
        "capture_time": info.capture_time,
        "make": info.make,
        "model": info.model,
    }
    if angles is not None:
        fields["turntable"] = angles.turntable
        fields["tilt"] = angles.tilt
    return {
        BLOCK_KEY: {key: value for key, value in fields.items() if value is not None}
    }


def encode_block(block: dict[str, Any]) -> str:
    """Compact JSON with sorted keys, ASCII only (EXIF ASCII fields are 7-bit)."""
    return json.dumps(block, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def tag_image(data: bytes, description: str) -> bytes:
    """A copy of the photo bytes with `description` as EXIF ImageDescription.

    Raises:
        TaggingError: the bytes are neither a parseable JPEG nor PNG.
    """
    if data.startswith(b"\xff\xd8"):
        return _tag_jpeg(data, description)
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return _tag_png(data, description)
    raise TaggingError("not a JPEG or PNG")


def read_description(data: bytes) -> str | None:
    """The ImageDescription of photo bytes (used by tests and `check`)."""
    with Image.open(io.BytesIO(data)) as image:
        value = image.getexif().get(TAG_IMAGE_DESCRIPTION)
    return value if isinstance(value, str) else None


def _exif_payload(existing: bytes | None, description: str, with_prefix: bool) -> bytes:
    exif = Image.Exif()
    if existing:
        try:
            exif.load(existing)
            # Materialise the sub-IFD so it is written back, not a dangling offset.
            exif.get_ifd(TAG_EXIF_IFD)
        except Exception:
            exif = Image.Exif()
    exif[TAG_IMAGE_DESCRIPTION] = description
    payload = _serialise(exif)
    if len(payload) > MAX_APP1_PAYLOAD:
        # Maker notes are the usual bulk and the reconstruction never reads them.
        exif.get_ifd(TAG_EXIF_IFD).pop(TAG_MAKER_NOTE, None)
        payload = _serialise(exif)
    if len(payload) > MAX_APP1_PAYLOAD:
        minimal = Image.Exif()
        minimal[TAG_IMAGE_DESCRIPTION] = description
        payload = _serialise(minimal)
    return payload if with_prefix else payload[len(b"Exif\x00\x00") :]


def _serialise(exif: Image.Exif) -> bytes:
    try:
        payload = exif.tobytes()
    except Exception:
        minimal = Image.Exif()
        minimal[TAG_IMAGE_DESCRIPTION] = exif[TAG_IMAGE_DESCRIPTION]
        payload = minimal.tobytes()
    if not payload.startswith(b"Exif\x00\x00"):
        payload = b"Exif\x00\x00" + payload
    return payload


def _tag_jpeg(data: bytes, description: str) -> bytes:
    position = 2
    existing: tuple[int, int] | None = None
    insert_at = 2
    while True:
        if position + 4 > len(data) or data[position] != 0xFF:
            raise TaggingError("damaged JPEG header")
        marker = data[position + 1]
        if marker == 0xFF:
            position += 1
            continue
        if marker in (0xDA, 0xD9):
            break
        length = struct.unpack(">H", data[position + 2 : position + 4])[0]
        end = position + 2 + length
        if marker == 0xE1 and data[position + 4 : position + 10] == b"Exif\x00\x00":
            existing = (position, end)
            break
        if marker == 0xE0 and position == insert_at:
            # Keep a leading JFIF APP0 first, as JFIF readers expect.
            insert_at = end
        position = end
    old_payload = data[existing[0] + 4 : existing[1]] if existing else None
    payload = _exif_payload(old_payload, description, with_prefix=True)
    segment = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    if existing:
        return data[: existing[0]] + segment + data[existing[1] :]
    return data[:insert_at] + segment + data[insert_at:]


def _tag_png(data: bytes, description: str) -> bytes:
    chunks: list[tuple[bytes, bytes]] = []
    position = 8
    while position + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        body = data[position + 8 : position + 8 + length]
        chunks.append((kind, body))
        position += 12 + length
        if kind == b"IEND":
            break
    if not chunks or chunks[0][0] != b"IHDR":
        raise TaggingError("damaged PNG header")
    existing = next((body for kind, body in chunks if kind == b"eXIf"), None)
    payload = _exif_payload(existing, description, with_prefix=False)
    out = [data[:8]]
    inserted = False
    for kind, body in chunks:
        if kind == b"eXIf":
            continue
        if kind == b"IDAT" and not inserted:
            out.append(_png_chunk(b"eXIf", payload))
            inserted = True
        out.append(_png_chunk(kind, body))
    out.append(data[position:])
    return b"".join(out)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return (
        struct.pack(">I", len(body))
        + kind
        + body
        + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    )
