"""Ingest: decode and check photos, apply EXIF orientation, derive the focal prior."""

from __future__ import annotations

import dataclasses
import math
import re
import shutil
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from projects.pipeline.types import (
    IMAGE_SUFFIXES,
    JPEG_SUFFIXES,
    CountCallback,
    ErrorCode,
    PipelineError,
    UnusableImage,
    ignore_count,
)

MIN_SIDE = 200
MAX_ZIP_BYTES = 8 * 1024**3  # uncompressed; guards against zip bombs
_DIAGONAL_35MM = 43.27
_DEFAULT_FOCAL_FACTOR = 1.2  # COLMAP's guess when EXIF has nothing
_EXIF_IFD = 0x8769
_RES_UNIT_MM = {2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}
# Sensor widths (mm) for bodies whose EXIF gives a focal length in mm but neither
# a 35 mm equivalent nor a focal-plane resolution: the Raspberry Pi modules of
# OpenScan rigs, and the sensor formats of common DSLR/mirrorless lines. The
# first matching (make, model) pattern wins; bundle adjustment refines the rest.
SENSOR_WIDTHS_MM: tuple[tuple[str, float], ...] = (
    (r"ov5647", 3.76),  # Pi camera v1
    (r"imx219", 3.68),  # Pi camera v2
    (r"imx477|imx378", 6.29),  # Pi HQ camera
    (r"imx708", 6.45),  # Pi camera module 3
    (r"imx519", 5.64),  # Arducam 16 MP (OpenScan Mini)
    (r"arducam.*64mp|hawkeye", 7.4),  # Arducam 64 MP
    (r"canon.*eos.*(5d|6d|1d|r5|r6|r3|r8|r\b|rp)", 36.0),  # Canon full frame
    (r"canon.*eos", 22.3),  # Canon APS-C
    (
        r"nikon.*d(3|4|5|6|7|8)\d\b|nikon.*d(700|750|780|800|810|850)|nikon z "
        r"?(5|6|7|8|9)",
        35.9,
    ),
    (r"nikon.*(d\d{3,4}|z ?(50|30|fc))", 23.5),  # Nikon DX
    (r"sony.*ilce-(7|9|1)", 35.8),  # Sony full frame
    (r"sony.*(ilce|nex|slt)", 23.5),  # Sony APS-C
    (r"fujifilm", 23.5),
    (r"olympus|om digital|panasonic.*dmc-g|panasonic.*dc-g", 17.3),  # Four Thirds
)


@dataclass(frozen=True, slots=True)
class IngestedImage:
    name: str
    width: int
    height: int
    focal_px: float
    focal_source: str  # "exif_35mm", "exif_sensor", "sensor_table" or "default"
    camera_key: str  # photos sharing it share one intrinsics block
    captured_at: str = ""  # EXIF DateTimeOriginal + sub-seconds, "" when absent
    source: str = ""  # the name in the user's folder or zip; ``name`` is ours


@dataclass(frozen=True, slots=True)
class IngestResult:
    image_dir: Path
    images: tuple[IngestedImage, ...]
    unusable: tuple[UnusableImage, ...]

    @property
    def single_camera(self) -> bool:
        return len({im.camera_key for im in self.images}) == 1


def _safe_name(name: str) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).name).lstrip(".")
    return base or "image"


def collect_input(input_path: Path, extract_dir: Path) -> tuple[Path, ...]:
    """Photo paths from a directory (sorted, non-recursive) or a zip (flattened)."""
    return tuple(path for path, _ in collect_named_input(input_path, extract_dir))


def collect_named_input(
    input_path: Path, extract_dir: Path
) -> tuple[tuple[Path, str], ...]:
    """(path, name in the user's folder or zip) per photo, as ``collect_input``.

    The name is the zip member's full path, so the portal can find the photo in
    the archive again after extraction renamed it.
    """
    if input_path.is_dir():
        return tuple(
            (p, p.name)
            for p in sorted(input_path.iterdir())
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
    if not zipfile.is_zipfile(input_path):
        raise PipelineError(
            "no_images",
            f"{input_path.name} is neither a folder nor a zip file of photos.",
        )
    extract_dir.mkdir(parents=True, exist_ok=True)
    out: list[tuple[Path, str]] = []
    seen: set[str] = set()
    with zipfile.ZipFile(input_path) as archive:
        members = [
            m
            for m in archive.infolist()
            if not m.is_dir()
            and Path(m.filename).suffix.lower() in IMAGE_SUFFIXES
            and "__MACOSX" not in m.filename
        ]
        if sum(m.file_size for m in members) > MAX_ZIP_BYTES:
            raise PipelineError(
                ErrorCode.ARCHIVE_TOO_LARGE,
                "The zip file unpacks to more than 8 GB of photos.",
            )
        for member in sorted(members, key=lambda m: m.filename):
            name = _safe_name(member.filename)
            while name.lower() in seen:  # same file name in two folders
                name = f"{len(seen)}_{name}"
            seen.add(name.lower())
            target = extract_dir / name
            with archive.open(member) as src, target.open("wb") as dst:
                shutil.copyfileobj(src, dst)
            out.append((target, member.filename))
    return tuple(out)


def _focal_prior(exif: Image.Exif, width: int, height: int) -> tuple[float, str]:
    ifd = exif.get_ifd(_EXIF_IFD)
    f35 = ifd.get(0xA405)
    if f35 and float(f35) > 0:
        return float(f35) * math.hypot(width, height) / _DIAGONAL_35MM, "exif_35mm"
    focal_mm, x_res = ifd.get(0x920A), ifd.get(0xA20E)
    unit = _RES_UNIT_MM.get(int(ifd.get(0xA210, 2)))
    exif_width = ifd.get(0xA002) or max(width, height)
    if focal_mm and x_res and unit and float(x_res) > 0:
        sensor_width_mm = float(exif_width) / float(x_res) * unit
        if sensor_width_mm > 0:
            return float(focal_mm) / sensor_width_mm * max(width, height), "exif_sensor"
    body = f"{exif.get(0x010F, '')} {exif.get(0x0110, '')}".strip().lower()
    if focal_mm and float(focal_mm) > 0:
        for pattern, sensor_width_mm in SENSOR_WIDTHS_MM:
            if re.search(pattern, body):
                return (
                    float(focal_mm) / sensor_width_mm * max(width, height),
                    "sensor_table",
                )
    return _DEFAULT_FOCAL_FACTOR * max(width, height), "default"


def _ingest_one(
    path: Path, target_dir: Path, name: str, max_pixels: int
) -> IngestedImage:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as raw:
            if raw.width * raw.height > max_pixels:
                raise ValueError(f"larger than {max_pixels // 1_000_000} megapixels")
            raw.load()  # forces a full decode, so truncated files fail here
            exif = raw.getexif()
            orientation = exif.get(0x0112, 1)
            image = ImageOps.exif_transpose(raw).convert("RGB")
    width, height = image.size
    if min(width, height) < MIN_SIDE:
        raise ValueError(f"smaller than {MIN_SIDE} pixels on a side")
    focal, source = _focal_prior(exif, width, height)
    target = target_dir / name
    if (
        orientation in (1, None)
        and path.suffix.lower() in JPEG_SUFFIXES
        and raw.mode == "RGB"
    ):
        shutil.copyfile(path, target)  # already upright: avoid a lossy re-encode
    else:
        image.save(target, quality=95)
    make_model = f"{exif.get(0x010F, '')}|{exif.get(0x0110, '')}".strip()
    key = f"{make_model}|{width}x{height}|{focal:.1f}"
    ifd = exif.get_ifd(_EXIF_IFD)
    stamp = str(ifd.get(0x9003) or "").strip()
    captured = (
        f"{stamp}.{str(ifd.get(0x9291) or '').strip().ljust(3, '0')}" if stamp else ""
    )
    return IngestedImage(name, width, height, focal, source, key, captured)


def ingest(
    paths: tuple[Path, ...],
    workdir: Path,
    *,
    max_pixels: int,
    max_images: int,
    sources: tuple[str, ...] = (),
    on_photo: CountCallback = ignore_count,
) -> IngestResult:
    """Check every photo and write upright copies into ``workdir/images``.

    ``sources`` are the photos' names in the user's upload, in ``paths`` order
    (default: the files' own names); each ingested image keeps its own.
    """
    if not paths:
        raise PipelineError("no_images", "No photos were found in the upload.")
    if len(paths) > max_images:
        raise PipelineError(
            ErrorCode.TOO_MANY_IMAGES,
            f"{len(paths)} photos is more than this service takes ({max_images}).",
        )
    image_dir = workdir / "images"
    if image_dir.exists():
        shutil.rmtree(image_dir)
    image_dir.mkdir(parents=True)
    good: list[IngestedImage] = []
    bad: list[UnusableImage] = []
    used: set[str] = set()
    for index, path in enumerate(paths):
        source = sources[index] if index < len(sources) else path.name
        stem = _safe_name(path.stem)
        name = (
            f"{stem}.jpg"
            if path.suffix.lower() not in JPEG_SUFFIXES
            else _safe_name(path.name)
        )
        while name.lower() in used:
            name = f"{len(used)}_{name}"
        try:
            image = _ingest_one(path, image_dir, name, max_pixels)
            good.append(dataclasses.replace(image, source=source))
            used.add(name.lower())
        except (
            UnidentifiedImageError,
            Image.DecompressionBombError,
            Image.DecompressionBombWarning,
        ):
            bad.append(UnusableImage(path.name, "not a readable image file"))
        except (OSError, SyntaxError) as exc:  # Pillow raises these for damaged files
            bad.append(UnusableImage(path.name, f"damaged or truncated image ({exc})"))
        except ValueError as exc:
            bad.append(UnusableImage(path.name, str(exc)))
        on_photo(index + 1, len(paths))
    if not good:
        raise PipelineError(
            "unreadable_images",
            f"None of the {len(paths)} files could be read as a photo.",
        )
    if len(good) < 3:
        raise PipelineError(
            "no_images",
            f"Only {len(good)} readable photos; at least 3 overlapping photos are "
            "needed.",
        )
    return IngestResult(image_dir, tuple(good), tuple(bad))
