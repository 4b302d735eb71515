"""Checks of an uploaded zip before anything unpacks it (pure Python, no Django).

Everything is decided from the central directory and bounded reads: entry
count and total uncompressed size before any byte is inflated (zip bombs),
path and type of every entry (zip slip, symlinks), and each image's header and
a reduced-size decode (pixel floods, truncated or mislabelled files).
"""

import stat
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG"}
_MAGIC = {"JPEG": (b"\xff\xd8\xff",), "PNG": (b"\x89PNG\r\n\x1a\n",)}
# Files that cameras, rigs and operating systems put beside photos; skipped, not refused.
_IGNORED_PARTS = {"__MACOSX", ".DS_Store", "Thumbs.db", "desktop.ini"}
_MAX_RATIO = 1000  # No real photo or sidecar compresses better than this.


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


def _check_image(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, kind: str, max_pixels: int
) -> str | None:
    with zf.open(info) as fh:
        head = fh.read(16)
        if not any(head.startswith(m) for m in _MAGIC[kind]):
            return f"is named like a {kind} but its content is not one"
    with zf.open(info) as fh, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(fh) as img:
                width, height = img.size
                if width * height > max_pixels:
                    return (
                        f"has {width}×{height} pixels, more than the limit of "
                        f"{max_pixels // 1_000_000} megapixels"
                    )
                # A reduced decode reads the whole stream cheaply and catches truncation.
                img.draft("RGB", (max(1, width // 8), max(1, height // 8)))
                img.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            return "declares too many pixels (decompression bomb)"
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            return f"cannot be decoded ({exc})"
        except zipfile.BadZipFile as exc:
            return f"is damaged in the zip ({exc})"
    return None


def inspect_zip(path: Path, *, limits: ArchiveLimits) -> ArchiveSummary:
    """Check the zip at ``path`` without extracting it.

    Raises:
        ArchiveError: with a message naming the first problems found.
    """
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise ArchiveError(
            "The upload is not a valid zip file; check that every part was sent in order."
        ) from exc
    with zf:
        infos = zf.infolist()
        if len(infos) > limits.max_entries:
            raise ArchiveError(
                f"The zip has {len(infos)} entries; at most {limits.max_entries} are allowed."
            )
        total = sum(i.file_size for i in infos)
        if total > limits.max_uncompressed:
            raise ArchiveError(
                f"The zip unpacks to {total} bytes; at most {limits.max_uncompressed} are allowed."
            )
        images: list[tuple[zipfile.ZipInfo, str]] = []
        others: list[str] = []
        problems: list[str] = []
        seen: set[str] = set()
        for info in infos:
            name = info.filename
            reason = _bad_name(name)
            mode = info.external_attr >> 16
            if reason is None and stat.S_ISLNK(mode):
                reason = "is a symbolic link"
            if (
                reason is None
                and info.compress_size
                and info.file_size / info.compress_size > _MAX_RATIO
            ):
                reason = "is compressed suspiciously well (zip bomb?)"
            normalized = name.rstrip("/").lower()
            if reason is None and normalized in seen:
                reason = "appears twice"
            seen.add(normalized)
            if reason:
                problems.append(f"'{name}' {reason}")
                continue
            if info.is_dir() or set(PurePosixPath(name).parts) & _IGNORED_PARTS:
                continue
            kind = IMAGE_SUFFIXES.get(PurePosixPath(name).suffix.lower())
            if kind:
                images.append((info, kind))
            else:
                others.append(name)
        if problems:
            raise ArchiveError("The zip was refused: " + "; ".join(problems[:5]) + ".")
        if not images:
            raise ArchiveError("The zip contains no JPEG or PNG photos.")
        if len(images) > limits.max_photos:
            raise ArchiveError(
                f"The zip contains {len(images)} photos; this project allows at most "
                f"{limits.max_photos}."
            )
        for info, kind in images:
            reason = _check_image(zf, info, kind, limits.max_image_pixels)
            if reason:
                problems.append(f"'{info.filename}' {reason}")
        if problems:
            raise ArchiveError(
                "Some photos cannot be used: " + "; ".join(problems[:5]) + "."
            )
        return ArchiveSummary(
            images=tuple(i.filename for i, _ in images),
            other_files=tuple(others),
            uncompressed_bytes=total,
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
