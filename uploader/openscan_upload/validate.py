"""Validation of a photo set before anything is sent.

Every file is checked and every finding is collected as an `Issue`; nothing
here raises for a bad photo. The caller prints the summary, writes the report
and only then decides to stop.

Kinds of issue (stable strings, used in the summary, the report and `--json`):

errors (the file cannot be used):
    UnsupportedFormat, NotAnImage, ExtensionMismatch, EmptyFile, FileTooLarge,
    CorruptImage, ResolutionTooLarge, ResolutionTooSmall, Equirectangular,
    Duplicate
set errors (the whole set cannot be sent):
    NoImages, TooManyPhotos, ProjectTooLarge, NotEnoughCredit
warnings (the set can be sent, the result may suffer):
    MissingFocalLength, Blurry, Underexposed, Overexposed, MixedCameras,
    MixedResolutions
notes (information only):
    Orientation, Ignored
"""

from __future__ import annotations

import hashlib
import re
import statistics
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageFilter, ImageStat

ERROR = "error"
WARNING = "warning"
NOTE = "note"

IMAGE_EXTENSIONS = {".jpg": "JPEG", ".jpeg": "JPEG", ".jpe": "JPEG", ".png": "PNG"}
# Photos the user probably meant to include but the reconstruction cannot read.
UNSUPPORTED_EXTENSIONS = frozenset(
    {
        ".tif",
        ".tiff",
        ".heic",
        ".heif",
        ".webp",
        ".bmp",
        ".gif",
        ".dng",
        ".cr2",
        ".cr3",
        ".nef",
        ".arw",
        ".orf",
        ".rw2",
        ".raf",
        ".raw",
    }
)
JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SIDECAR_NAMES = frozenset({"openscan-manifest.json", "openscan-upload-report.json"})

TAG_IMAGE_DESCRIPTION = 0x010E
TAG_MAKE = 0x010F
TAG_MODEL = 0x0110
TAG_ORIENTATION = 0x0112
TAG_DATETIME = 0x0132
TAG_EXIF_IFD = 0x8769
TAG_DATETIME_ORIGINAL = 0x9003
TAG_FOCAL_LENGTH = 0x920A
TAG_FOCAL_LENGTH_35MM = 0xA405

EQUIRECTANGULAR = re.compile(
    rb"ProjectionType\s*(?:=\s*[\"']|>)\s*equirectangular", re.IGNORECASE
)
# Photo Sphere XMP sits in the header; no need to scan a 20 MB file for it.
XMP_SCAN_BYTES = 512 * 1024
METRIC_MAX_SIDE = 1024
# Bytes a stored zip adds per file (local header, central directory entry,
# both carrying the name) and once (end record), plus room for the tag block.
ZIP_OVERHEAD_PER_FILE = 30 + 46 + 1024
ZIP_OVERHEAD_FIXED = 22


@dataclass(frozen=True)
class Limits:
    """Per-photo limits and warning thresholds; all configurable from the CLI."""

    max_file_size: int = 50_000_000
    max_pixels: int = 100_000_000
    min_pixels: int = 300_000
    blur_ratio: float = 0.35
    dark_mean: float = 40.0
    bright_mean: float = 215.0
    clipped_fraction: float = 0.5


@dataclass(frozen=True)
class TokenInfo:
    """What getTokenInfo says the token may still do (sizes in bytes)."""

    credit: int
    limit_filesize: int
    limit_photos: int


@dataclass(frozen=True)
class Issue:
    kind: str
    severity: str
    message: str
    file: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {
            "kind": self.kind,
            "severity": self.severity,
            "file": self.file,
            "message": self.message,
        }


@dataclass
class ImageInfo:
    """What validation learnt about one photo."""

    path: Path
    name: str
    size: int
    sha256: str
    format: str | None = None
    width: int = 0
    height: int = 0
    make: str | None = None
    model: str | None = None
    focal_length: float | None = None
    focal_length_35mm: float | None = None
    orientation: int | None = None
    capture_time: str | None = None
    sharpness: float | None = None
    brightness: float | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "size": self.size,
            "sha256": self.sha256,
            "format": self.format,
            "width": self.width,
            "height": self.height,
            "make": self.make,
            "model": self.model,
            "focal_length": self.focal_length,
            "focal_length_35mm": self.focal_length_35mm,
            "orientation": self.orientation,
            "capture_time": self.capture_time,
            "sharpness": _round(self.sharpness),
            "brightness": _round(self.brightness),
        }


@dataclass
class ValidationResult:
    images: list[ImageInfo] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)

    def blocking(self, strict: bool = False) -> list[Issue]:
        """Issues that stop the run: errors, and warnings too with --strict."""
        severities = {ERROR, WARNING} if strict else {ERROR}
        return [issue for issue in self.issues if issue.severity in severities]

    def bad_files(self, strict: bool = False) -> set[str]:
        return {issue.file for issue in self.blocking(strict) if issue.file is not None}

    def set_errors(self, strict: bool = False) -> list[Issue]:
        """Blocking issues about the whole set; --skip-bad cannot leave these out."""
        return [issue for issue in self.blocking(strict) if issue.file is None]

    def usable(self, strict: bool = False) -> list[ImageInfo]:
        bad = self.bad_files(strict)
        return [image for image in self.images if image.name not in bad]


def sniff(head: bytes) -> str | None:
    """The image format from the magic bytes, or None."""
    if head.startswith(JPEG_MAGIC):
        return "JPEG"
    if head.startswith(PNG_MAGIC):
        return "PNG"
    return None


def list_candidates(directory: Path) -> list[Path]:
    """Files of the folder (not subfolders) in a stable order, hidden files left out."""
    return sorted(
        (
            path
            for path in directory.iterdir()
            if path.is_file()
            and not path.name.startswith(".")
            and path.name not in SIDECAR_NAMES
        ),
        key=lambda path: path.name,
    )


def jpeg_is_complete(data: bytes) -> bool:
    """Whether the JPEG stream reaches an end-of-image marker after its scan.

    Walks the header segments (so an EXIF thumbnail's own end marker is not
    mistaken for the photo's) and then looks for EOI after the first scan.
    Data after EOI (some cameras append a trailer) is allowed.
    """
    position = 2
    length = len(data)
    while position + 4 <= length:
        if data[position] != 0xFF:
            return False
        marker = data[position + 1]
        if marker == 0xFF:
            position += 1
            continue
        if marker == 0xDA:
            return data.find(b"\xff\xd9", position) != -1
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            position += 2
            continue
        segment = int.from_bytes(data[position + 2 : position + 4], "big")
        position += 2 + segment
    return False


def inspect_file(path: Path, limits: Limits) -> tuple[ImageInfo | None, list[Issue]]:
    """Check one file on its own. Returns (None, []) for files that are not photos."""
    name = path.name
    extension = path.suffix.lower()
    size = path.stat().st_size
    if extension not in IMAGE_EXTENSIONS:
        with path.open("rb") as handle:
            detected = sniff(handle.read(16))
        if detected is not None:
            return None, [
                Issue(
                    "ExtensionMismatch",
                    ERROR,
                    f"is a {detected} photo but named "
                    f"'{extension or 'without extension'}'; "
                    f"rename it to .{'jpg' if detected == 'JPEG' else 'png'}",
                    name,
                )
            ]
        if extension in UNSUPPORTED_EXTENSIONS:
            return None, [
                Issue(
                    "UnsupportedFormat",
                    ERROR,
                    f"{extension} photos are not accepted; convert them to JPEG",
                    name,
                )
            ]
        return None, [Issue("Ignored", NOTE, "not a photo, left out", name)]
    if size == 0:
        return None, [Issue("EmptyFile", ERROR, "the file is empty (0 bytes)", name)]
    if size > limits.max_file_size:
        return None, [
            Issue(
                "FileTooLarge",
                ERROR,
                f"{size:,} bytes, more than the {limits.max_file_size:,} allowed per "
                "photo",
                name,
            )
        ]

    data = path.read_bytes()
    info = ImageInfo(
        path=path, name=name, size=size, sha256=hashlib.sha256(data).hexdigest()
    )
    detected = sniff(data[:16])
    expected = IMAGE_EXTENSIONS[extension]
    if detected is None:
        return info, [
            Issue(
                "NotAnImage",
                ERROR,
                f"named {extension} but its content is not a JPEG or PNG photo",
                name,
            )
        ]
    info.format = detected
    if detected != expected:
        return info, [
            Issue(
                "ExtensionMismatch",
                ERROR,
                f"named {extension} but is a {detected}; rename it to "
                f".{'jpg' if detected == 'JPEG' else 'png'}",
                name,
            )
        ]
    if detected == "JPEG" and not jpeg_is_complete(data):
        return info, [
            Issue(
                "CorruptImage",
                ERROR,
                "the JPEG is truncated (no end marker); copy it again from the camera",
                name,
            )
        ]
    issues = _decode_and_measure(info, data, limits)
    if EQUIRECTANGULAR.search(data[:XMP_SCAN_BYTES]):
        issues.append(
            Issue(
                "Equirectangular",
                ERROR,
                "is a 360° equirectangular panorama; photogrammetry needs ordinary "
                "(perspective) photos",
                name,
            )
        )
    return info, issues


def _decode_and_measure(info: ImageInfo, data: bytes, limits: Limits) -> list[Issue]:
    import io

    name = info.name
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        return [
            Issue(
                "ResolutionTooLarge", ERROR, f"too many pixels to process ({exc})", name
            )
        ]
    except (OSError, ValueError, SyntaxError) as exc:
        return [Issue("CorruptImage", ERROR, f"cannot be decoded: {exc}", name)]
    with image:
        info.width, info.height = image.size
        pixels = info.width * info.height
        if pixels > limits.max_pixels:
            return [
                Issue(
                    "ResolutionTooLarge",
                    ERROR,
                    f"{info.width}x{info.height} is {pixels / 1e6:.1f} MP, more than "
                    f"{limits.max_pixels / 1e6:.1f} MP",
                    name,
                )
            ]
        issues: list[Issue] = []
        if pixels < limits.min_pixels:
            issues.append(
                Issue(
                    "ResolutionTooSmall",
                    ERROR,
                    f"{info.width}x{info.height} is {pixels / 1e6:.2f} MP, less than "
                    f"{limits.min_pixels / 1e6:.2f} MP",
                    name,
                )
            )
        _read_exif(info, image)
        try:
            # Decoding at reduced scale still reads the whole stream, so
            # truncation is caught while the metrics stay cheap on a Pi.
            image.draft("L", (METRIC_MAX_SIDE, METRIC_MAX_SIDE))
            image.load()
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            issues.append(
                Issue("CorruptImage", ERROR, f"cannot be decoded: {exc}", name)
            )
            return issues
        _measure(info, image)
    if info.orientation not in (None, 1):
        issues.append(
            Issue(
                "Orientation",
                NOTE,
                f"EXIF orientation {info.orientation}: the photo is stored rotated",
                name,
            )
        )
    if info.focal_length is None and info.focal_length_35mm is None:
        issues.append(
            Issue(
                "MissingFocalLength",
                WARNING,
                "no focal length in EXIF; the reconstruction will have to guess it",
                name,
            )
        )
    if info.brightness is not None:
        if info.brightness < limits.dark_mean:
            issues.append(
                Issue(
                    "Underexposed",
                    WARNING,
                    f"very dark (mean brightness {info.brightness:.0f}/255)",
                    name,
                )
            )
        elif info.brightness > limits.bright_mean:
            issues.append(
                Issue(
                    "Overexposed",
                    WARNING,
                    f"very bright (mean brightness {info.brightness:.0f}/255)",
                    name,
                )
            )
    return issues


def _read_exif(info: ImageInfo, image: Image.Image) -> None:
    try:
        exif = image.getexif()
        sub = exif.get_ifd(TAG_EXIF_IFD)
    except Exception:
        return
    info.make = _text(exif.get(TAG_MAKE))
    info.model = _text(exif.get(TAG_MODEL))
    orientation = exif.get(TAG_ORIENTATION)
    info.orientation = int(orientation) if isinstance(orientation, int) else None
    info.focal_length = _positive(sub.get(TAG_FOCAL_LENGTH))
    info.focal_length_35mm = _positive(sub.get(TAG_FOCAL_LENGTH_35MM))
    stamp = _text(sub.get(TAG_DATETIME_ORIGINAL)) or _text(exif.get(TAG_DATETIME))
    info.capture_time = _exif_time(stamp)


def _measure(info: ImageInfo, image: Image.Image) -> None:
    gray = image.convert("L")
    if max(gray.size) > METRIC_MAX_SIDE:
        gray.thumbnail((METRIC_MAX_SIDE, METRIC_MAX_SIDE))
    stat = ImageStat.Stat(gray)
    info.brightness = float(stat.mean[0])
    # Variance of the Laplacian: a sharp photo has strong local contrast. The
    # kernel's output is shifted by 128 because Pillow clips to 0..255.
    laplacian = gray.filter(
        ImageFilter.Kernel((3, 3), [0, 1, 0, 1, -4, 1, 0, 1, 0], scale=1, offset=128)
    )
    info.sharpness = float(ImageStat.Stat(laplacian).var[0])


def check_set(images: list[ImageInfo], limits: Limits) -> list[Issue]:
    """Checks that need the whole set: duplicates, mixed cameras, blur."""
    issues: list[Issue] = []
    first_by_hash: dict[str, str] = {}
    for image in images:
        original = first_by_hash.setdefault(image.sha256, image.name)
        if original != image.name:
            issues.append(
                Issue(
                    "Duplicate",
                    ERROR,
                    f"identical to {original}; delete the copy (or use --skip-bad)",
                    image.name,
                )
            )
    cameras = _groups(
        images, lambda image: f"{image.make or '?'} {image.model or '?'}".strip()
    )
    if len(cameras) > 1:
        issues.append(
            Issue(
                "MixedCameras",
                WARNING,
                "photos come from several cameras: " + _describe_groups(cameras),
            )
        )
    sizes = _groups(images, lambda image: f"{image.width}x{image.height}")
    if len(sizes) > 1:
        issues.append(
            Issue(
                "MixedResolutions",
                WARNING,
                "photos have different resolutions: " + _describe_groups(sizes),
            )
        )
    scores = [image.sharpness for image in images if image.sharpness is not None]
    if len(scores) >= 3:
        median = statistics.median(scores)
        for image in images:
            if (
                image.sharpness is not None
                and median > 0
                and (image.sharpness < limits.blur_ratio * median)
            ):
                issues.append(
                    Issue(
                        "Blurry",
                        WARNING,
                        f"sharpness is {100 * image.sharpness / median:.0f}% of the "
                        "set's "
                        "median; retake it or leave it out",
                        image.name,
                    )
                )
    return issues


def estimated_zip_size(images: Iterable[ImageInfo]) -> int:
    """An upper estimate of the zip's size, for checks made before packing."""
    return ZIP_OVERHEAD_FIXED + sum(
        image.size + ZIP_OVERHEAD_PER_FILE + 2 * len(image.name.encode())
        for image in images
    )


def check_limits(
    images: list[ImageInfo],
    token: TokenInfo | None,
    zip_size: int | None = None,
    check_credit: bool = True,
) -> list[Issue]:
    """Photo count and size against what the token allows.

    A limit of 0 or less means the server sets none. `zip_size` is the real
    size once packed; before that an estimate is used.
    """
    if not images:
        return [Issue("NoImages", ERROR, "no usable photos to upload")]
    if token is None:
        return []
    issues: list[Issue] = []
    size = zip_size if zip_size is not None else estimated_zip_size(images)
    if token.limit_photos > 0 and len(images) > token.limit_photos:
        issues.append(
            Issue(
                "TooManyPhotos",
                ERROR,
                f"{len(images)} photos, but this token allows {token.limit_photos} "
                "per project",
            )
        )
    if token.limit_filesize > 0 and size > token.limit_filesize:
        issues.append(
            Issue(
                "ProjectTooLarge",
                ERROR,
                f"the upload is about {_gb(size)}, but this token allows "
                f"{_gb(token.limit_filesize)} per project",
            )
        )
    if check_credit and size > token.credit:
        issues.append(
            Issue(
                "NotEnoughCredit",
                ERROR,
                f"the upload is about {_gb(size)}, but the token has "
                f"{_gb(token.credit)} "
                "of credit left",
            )
        )
    return issues


def validate_directory(
    directory: Path,
    limits: Limits,
    token: TokenInfo | None = None,
    strict: bool = False,
    on_file: Callable[[Path], None] | None = None,
) -> ValidationResult:
    """Validate every file of the folder and the set as a whole.

    The token's limits are checked against the photos that would be sent,
    i.e. without those that have blocking issues (warnings too with `strict`).
    """
    result = ValidationResult()
    for path in list_candidates(directory):
        info, issues = inspect_file(path, limits)
        if info is not None:
            result.images.append(info)
        result.issues.extend(issues)
        if on_file is not None:
            on_file(path)
    bad = result.bad_files()
    decodable = [image for image in result.images if image.name not in bad]
    result.issues.extend(check_set(decodable, limits))
    result.issues.extend(check_limits(result.usable(strict), token))
    return result


def _groups(images: list[ImageInfo], key: Callable[[ImageInfo], str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for image in images:
        counts[key(image)] = counts.get(key(image), 0) + 1
    return counts


def _describe_groups(groups: dict[str, int]) -> str:
    return ", ".join(f"{name} ({count})" for name, count in sorted(groups.items()))


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    value = value.strip("\x00 ").strip()
    return value or None


def _positive(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]  # IFDRational, int or float
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return number if number > 0 else None


def _exif_time(value: str | None) -> str | None:
    """EXIF 'YYYY:MM:DD HH:MM:SS' as ISO 8601 (no zone: EXIF has none)."""
    if not value:
        return None
    match = re.match(r"(\d{4}):(\d{2}):(\d{2})[ T](\d{2}):(\d{2}):(\d{2})", value)
    if not match:
        return None
    year, month, day, hour, minute, second = match.groups()
    return f"{year}-{month}-{day}T{hour}:{minute}:{second}"


def _gb(size: int) -> str:
    return f"{size / 1e9:.2f} GB" if size >= 10_000_000 else f"{size / 1e6:.2f} MB"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
