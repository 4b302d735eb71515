"""Checks of an uploaded zip before anything unpacks it (pure Python, no Django).

Everything is decided with bounded time and memory: the entry count from the
end-of-central-directory record before the directory itself is parsed; total
uncompressed size, encryption, compression method, path and type of every
entry (zip bombs, zip slip, symlinks) from the directory; every entry's local
header against the directory; each photo streamed once (its CRC) and judged
from its header, with a reduced-size decode for JPEG and a chunk check for PNG
(pixel floods, truncated or mislabelled files), within a CPU budget.
"""

import stat
import struct
import time
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from PIL import Image, UnidentifiedImageError

# Photos the portal accepts in a zip, by suffix: Pillow's format name.
PHOTO_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG"}
_MAGIC = {"JPEG": (b"\xff\xd8\xff",), "PNG": (b"\x89PNG\r\n\x1a\n",)}
# Files that cameras, rigs and operating systems put beside photos; skipped, not
# refused.
_IGNORED_PARTS = {"__MACOSX", ".DS_Store", "Thumbs.db", "desktop.ini"}
_MAX_RATIO = 1000  # No real photo or sidecar compresses better than this.
_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
# A directory record is 46 bytes plus name, extra and comment; real ones stay far
# below this per entry, so a larger directory is refused before it is parsed.
_DIRECTORY_BYTES_PER_ENTRY = 2048
_EOCD = struct.Struct("<4s4H2LH")
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")
# Errors that reading a damaged or crafted entry can raise.
_ENTRY_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    NotImplementedError,
    RuntimeError,
    OSError,
    ValueError,
)


class ArchiveError(ValueError):
    """The zip cannot be accepted; the message says why, for a person."""


@dataclass(frozen=True, slots=True)
class ArchiveSummary:
    images: tuple[str, ...]
    other_files: tuple[str, ...]
    uncompressed_bytes: int
    problems: tuple[str, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class ArchiveLimits:
    max_entries: int
    max_uncompressed: int
    max_photos: int
    max_image_pixels: int
    cpu_seconds: float = 120.0


def _directory_size(fh: BinaryIO) -> tuple[int, int]:
    """Entries and bytes the central directory declares, read from its end records."""
    fh.seek(0, 2)
    size = fh.tell()
    tail_len = min(size, _EOCD.size + 0xFFFF)
    fh.seek(size - tail_len)
    tail = fh.read(tail_len)
    pos = tail.rfind(b"PK\x05\x06")
    if pos < 0 or len(tail) - pos < _EOCD.size:
        raise ArchiveError(
            "The upload is not a valid zip file; check that every part was sent in "
            "order."
        )
    _, _, _, _, entries, cd_size, _, _ = _EOCD.unpack_from(tail, pos)
    locator = pos - _ZIP64_LOCATOR.size
    if locator >= 0 and tail[locator : locator + 4] == b"PK\x06\x07":
        _, _, eocd64_offset, _ = _ZIP64_LOCATOR.unpack_from(tail, locator)
        fh.seek(eocd64_offset)
        record = fh.read(_ZIP64_EOCD.size)
        if len(record) == _ZIP64_EOCD.size and record[:4] == b"PK\x06\x06":
            fields = _ZIP64_EOCD.unpack(record)
            entries, cd_size = fields[7], fields[8]
    return entries, cd_size


def _bad_name(name: str) -> str | None:
    if "\\" in name:
        return "uses backslashes"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "is an absolute path"
    if ".." in PurePosixPath(name).parts:
        return "points outside the archive ('..')"
    if any(ord(c) < 32 for c in name):
        return "contains control characters"
    return None


def _entry_problem(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> str | None:
    """Open the entry (its local header must match the directory) without reading it."""
    try:
        with zf.open(info):
            return None
    except _ENTRY_ERRORS as exc:
        return f"is damaged in the zip ({exc})"


def _read_through(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo
) -> tuple[bytes, str | None]:
    """The entry's first 16 bytes, after reading it all once.

    zipfile checks the CRC at the end of a full read.
    """
    try:
        with zf.open(info) as fh:
            head = fh.read(16)
            while fh.read(1 << 20):
                pass
    except _ENTRY_ERRORS as exc:
        return b"", f"is damaged in the zip ({exc})"
    return head, None


def _check_image(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, kind: str, max_pixels: int
) -> str | None:
    head, problem = _read_through(zf, info)
    if problem:
        return problem
    if not any(head.startswith(m) for m in _MAGIC[kind]):
        return f"is named like a {kind} but its content is not one"
    with zf.open(info) as fh, warnings.catch_warnings():
        # The pixel limit is ours (max_pixels); Pillow's lower warning level is not.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(fh, formats=[kind]) as img:
                width, height = img.size  # From the header (JPEG SOF, PNG IHDR).
                if width * height > max_pixels:
                    return (
                        f"has {width}×{height} pixels, more than the limit of "
                        f"{max_pixels // 1_000_000} megapixels"
                    )
                if kind == "PNG":
                    # Chunk structure and CRCs to IEND, without inflating pixels.
                    img.verify()
                else:
                    # A reduced decode reads the whole stream cheaply and catches
                    # truncation.
                    img.draft("RGB", (max(1, width // 8), max(1, height // 8)))
                    img.load()
        except Image.DecompressionBombError as exc:
            # Pillow refuses twice its own limit while reading the header.
            return (
                f"has more pixels than the limit of {max_pixels // 1_000_000} "
                f"megapixels ({exc})"
            )
        except (UnidentifiedImageError, SyntaxError, *_ENTRY_ERRORS) as exc:
            return f"cannot be decoded ({exc})"
    return None


@dataclass(frozen=True, slots=True)
class _Directory:
    images: list[tuple[zipfile.ZipInfo, str]]
    others: list[zipfile.ZipInfo]
    uncompressed_bytes: int


def _open_zip(fh: BinaryIO, limits: ArchiveLimits) -> zipfile.ZipFile:
    """Open the zip once its end records show a directory within the limits."""
    declared, directory_bytes = _directory_size(fh)
    if declared > limits.max_entries:
        raise ArchiveError(
            f"The zip has {declared} entries; at most {limits.max_entries} are allowed."
        )
    if directory_bytes > limits.max_entries * _DIRECTORY_BYTES_PER_ENTRY:
        raise ArchiveError(
            f"The zip's directory is {directory_bytes} bytes, more than "
            f"{limits.max_entries} entries need; the zip is damaged or crafted."
        )
    try:
        return zipfile.ZipFile(fh)
    except (zipfile.BadZipFile, *_ENTRY_ERRORS) as exc:
        raise ArchiveError(
            "The upload is not a valid zip file; check that every part was sent in "
            "order."
        ) from exc


def _check_directory(
    zf: zipfile.ZipFile, limits: ArchiveLimits, *, local_headers: bool
) -> _Directory:
    """Every check the central directory allows (and each local header if asked)."""
    infos = zf.infolist()
    if len(infos) > limits.max_entries:
        raise ArchiveError(
            f"The zip has {len(infos)} entries; at most {limits.max_entries} are "
            "allowed."
        )
    total = sum(i.file_size for i in infos)
    if total > limits.max_uncompressed:
        raise ArchiveError(
            f"The zip unpacks to {total} bytes; at most {limits.max_uncompressed} "
            "are allowed."
        )
    images: list[tuple[zipfile.ZipInfo, str]] = []
    others: list[zipfile.ZipInfo] = []
    problems: list[str] = []
    seen: set[str] = set()
    for info in infos:
        name = info.filename
        reason = _bad_name(name)
        mode = info.external_attr >> 16
        if reason is None and stat.S_ISLNK(mode):
            reason = "is a symbolic link"
        if reason is None and info.flag_bits & 0x1:
            reason = "is encrypted"
        if reason is None and info.compress_type not in _METHODS:
            reason = (
                f"uses compression method {info.compress_type} (only stored and "
                "deflated are accepted)"
            )
        if (
            reason is None
            and info.compress_size
            and info.file_size / info.compress_size > _MAX_RATIO
        ):
            reason = "is compressed suspiciously well (zip bomb?)"
        if reason is None and local_headers:
            reason = _entry_problem(zf, info)
        normalized = name.rstrip("/").lower()
        if reason is None and normalized in seen:
            reason = "appears twice"
        seen.add(normalized)
        if reason:
            problems.append(f"'{name}' {reason}")
            continue
        if info.is_dir() or set(PurePosixPath(name).parts) & _IGNORED_PARTS:
            continue
        kind = PHOTO_FORMATS.get(PurePosixPath(name).suffix.lower())
        if kind:
            images.append((info, kind))
        else:
            others.append(info)
    if problems:
        raise ArchiveError("The zip was refused: " + "; ".join(problems[:5]) + ".")
    if not images:
        raise ArchiveError("The zip contains no JPEG or PNG photos.")
    if len(images) > limits.max_photos:
        raise ArchiveError(
            f"The zip contains {len(images)} photos; this project allows at most "
            f"{limits.max_photos}."
        )
    return _Directory(images=images, others=others, uncompressed_bytes=total)


def inspect_directory(fh: BinaryIO, *, limits: ArchiveLimits) -> int:
    """The checks that need only the end of the zip; return its photo count.

    Reads the end records and the central directory (bounded by the entry
    limit), nothing else, so it is cheap whatever the zip's size.

    Raises:
        ArchiveError: with a message naming the first problem entries.
    """
    with _open_zip(fh, limits) as zf:
        return len(_check_directory(zf, limits, local_headers=False).images)


def inspect_zip(path: Path, *, limits: ArchiveLimits) -> ArchiveSummary:
    """Check the zip at ``path`` without extracting it.

    Raises:
        ArchiveError: with a message naming the first problems found.
    """
    with path.open("rb") as fh, _open_zip(fh, limits) as zf:
        directory = _check_directory(zf, limits, local_headers=True)
        problems: list[str] = []
        started = time.process_time()
        entries: list[tuple[zipfile.ZipInfo, str | None]] = [
            *directory.images,
            *((info, None) for info in directory.others),
        ]
        for info, kind in entries:
            if time.process_time() - started > limits.cpu_seconds:
                problems.append(
                    f"'{info.filename}' was not checked: checking the zip ran out of "
                    f"the project's CPU budget ({limits.cpu_seconds:g} s were left)"
                )
                break
            reason = (
                _check_image(zf, info, kind, limits.max_image_pixels)
                if kind
                else _read_through(zf, info)[1]
            )
            if reason:
                problems.append(f"'{info.filename}' {reason}")
        if problems:
            raise ArchiveError(
                "Some files cannot be used: " + "; ".join(problems[:5]) + "."
            )
        return ArchiveSummary(
            images=tuple(i.filename for i, _ in directory.images),
            other_files=tuple(i.filename for i in directory.others),
            uncompressed_bytes=directory.uncompressed_bytes,
        )


def extract_images(path: Path, dest: Path, *, limits: ArchiveLimits) -> list[Path]:
    """Write the zip's photos (checked first) flat into ``dest``; return their paths.

    Names are generated here, never taken from the archive, so nothing can be
    written outside ``dest``.
    """
    summary = inspect_zip(path, limits=limits)
    dest.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []
    with zipfile.ZipFile(path) as zf:
        for index, name in enumerate(sorted(summary.images)):
            stem = "".join(
                c if c.isalnum() or c in "-_" else "_" for c in PurePosixPath(name).stem
            )
            target = (
                dest / f"{index:04d}_{stem[:80]}{PurePosixPath(name).suffix.lower()}"
            )
            with zf.open(name) as src, target.open("wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
            out.append(target)
    return out
