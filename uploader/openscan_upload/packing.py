"""Packing the tagged photos into one zip and cutting it into upload parts.

The zip is deterministic (stored entries, fixed timestamps and attributes,
entries in name order), so packing the same photos for the same project again
gives the same bytes: a rerun can rebuild a deleted zip and still resume.
Parts are consecutive byte ranges of that zip, read straight from it when
uploading; they are never written out as separate files.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .tagging import Angles, build_block, encode_block, tag_image
from .validate import ImageInfo

MAX_PART_SIZE = 200_000_000
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
READ_BLOCK = 1024 * 1024


class PackingError(Exception):
    """A photo changed or vanished between validation and packing."""


@dataclass(frozen=True)
class Part:
    index: int
    offset: int
    size: int
    sha256: str


@dataclass(frozen=True)
class PackedZip:
    path: Path
    size: int
    sha256: str
    entries: list[dict[str, object]]


def build_zip(
    images: list[ImageInfo],
    project: str,
    zip_path: Path,
    angles: dict[str, Angles] | None = None,
    progress: Callable[[int], None] | None = None,
) -> PackedZip:
    """Tag every photo in memory and write them into a deterministic zip.

    The zip is written next to `zip_path` and renamed into place, so a crash
    never leaves a half zip under the final name. `progress` receives the
    number of original bytes processed after each photo.

    Raises:
        PackingError: a photo no longer matches what was validated.
    """
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    partial = zip_path.with_name(zip_path.name + ".partial")
    entries: list[dict[str, object]] = []
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_STORED) as archive:
        for index, image in enumerate(sorted(images, key=lambda item: item.name)):
            try:
                data = image.path.read_bytes()
            except OSError as exc:
                raise PackingError(
                    f"{image.name}: cannot be read any more ({exc})"
                ) from exc
            if hashlib.sha256(data).hexdigest() != image.sha256:
                raise PackingError(
                    f"{image.name} changed after it was checked; run again"
                )
            block = build_block(project, index, image, (angles or {}).get(image.name))
            tagged = tag_image(data, encode_block(block))
            info = zipfile.ZipInfo(image.name, date_time=ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_STORED
            info.create_system = 3
            info.external_attr = 0o100644 << 16
            archive.writestr(info, tagged)
            entries.append(
                {
                    "name": image.name,
                    "size": len(tagged),
                    "sha256": hashlib.sha256(tagged).hexdigest(),
                }
            )
            if progress is not None:
                progress(image.size)
    os.replace(partial, zip_path)
    size, digest, _ = hash_ranges(zip_path, [])
    return PackedZip(path=zip_path, size=size, sha256=digest, entries=entries)


def part_ranges(total: int, part_size: int = MAX_PART_SIZE) -> list[tuple[int, int]]:
    """(offset, size) of each part: consecutive slices of at most `part_size`.

    Raises:
        ValueError: `part_size` is not between 1 and 200,000,000.
    """
    if not 0 < part_size <= MAX_PART_SIZE:
        raise ValueError(f"part size must be between 1 and {MAX_PART_SIZE:,} bytes")
    if total <= 0:
        return [(0, 0)]
    return [
        (offset, min(part_size, total - offset))
        for offset in range(0, total, part_size)
    ]


def hash_ranges(
    path: Path,
    ranges: list[tuple[int, int]],
) -> tuple[int, str, list[str]]:
    """One pass over the file: its size, its sha256 and the sha256 of each range."""
    whole = hashlib.sha256()
    digests = [hashlib.sha256() for _ in ranges]
    position = 0
    with path.open("rb") as handle:
        while True:
            block = handle.read(READ_BLOCK)
            if not block:
                break
            whole.update(block)
            end = position + len(block)
            for (offset, size), digest in zip(ranges, digests):
                start, stop = max(offset, position), min(offset + size, end)
                if start < stop:
                    digest.update(block[start - position : stop - position])
            position = end
    return position, whole.hexdigest(), [digest.hexdigest() for digest in digests]


def split_parts(path: Path, part_size: int = MAX_PART_SIZE) -> list[Part]:
    """The upload parts of a zip with their hashes."""
    ranges = part_ranges(path.stat().st_size, part_size)
    _, _, digests = hash_ranges(path, ranges)
    return [
        Part(index=index, offset=offset, size=size, sha256=digest)
        for index, ((offset, size), digest) in enumerate(zip(ranges, digests))
    ]


def read_part(path: Path, offset: int, size: int) -> bytes:
    with path.open("rb") as handle:
        handle.seek(offset)
        return handle.read(size)


class PartReader:
    """A file-like view of one byte range, reporting bytes as they are read.

    requests sends it as the request body with a Content-Length taken from
    `__len__`, reading it block by block, so a 200 MB part is never held in
    memory. It deliberately has no `tell`/`__iter__`, which would make requests
    fall back to chunked transfer encoding.
    """

    def __init__(
        self,
        path: Path,
        offset: int,
        size: int,
        on_read: Callable[[int], None] | None = None,
    ) -> None:
        self._handle = path.open("rb")
        self._handle.seek(offset)
        self._remaining = size
        self._on_read = on_read

    def __len__(self) -> int:
        return self._remaining

    def __enter__(self) -> PartReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0 or size > self._remaining:
            size = self._remaining
        data = self._handle.read(size)
        self._remaining -= len(data)
        if data and self._on_read is not None:
            self._on_read(len(data))
        return data

    def close(self) -> None:
        self._handle.close()
