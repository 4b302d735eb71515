"""Public value types of the reconstruction pipeline (no engine imports here)."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# Files the pipeline reads as photos, and those it copies without re-encoding.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp"})
JPEG_SUFFIXES = frozenset({".jpg", ".jpeg"})


@dataclass(frozen=True, slots=True)
class ResultFile:
    """One file a finished reconstruction leaves in ``out_dir``."""

    name: str
    media_type: str
    in_archive: bool  # packed into result.zip
    in_viewer: bool  # the portal's 3D viewer may fetch it
    # Listed among the downloads; the OBJ's parts are not, since alone they lose
    # each other (model.obj names model.mtl, which names texture.jpg).
    listed: bool = True


ARCHIVE_NAME = "result.zip"
TEXTURE_NAME = "texture.jpg"
OBJ_BUNDLE_NAME = "model_obj.zip"
# The OBJ and the files it names, by the names it names them (model_obj.zip).
OBJ_PARTS = ("model.obj", "model.mtl", TEXTURE_NAME)
COVERAGE_NAME = "coverage.json"
# The output contract: export writes these, the portal stores, lists, serves and
# links exactly these (selectors, viewer files, the wire download URL pattern).
RESULT_FILES: tuple[ResultFile, ...] = (
    ResultFile(ARCHIVE_NAME, "application/zip", in_archive=False, in_viewer=False),
    ResultFile("model.glb", "model/gltf-binary", in_archive=True, in_viewer=True),
    ResultFile(
        "model_preview.glb", "model/gltf-binary", in_archive=True, in_viewer=True
    ),
    ResultFile(OBJ_BUNDLE_NAME, "application/zip", in_archive=False, in_viewer=False),
    ResultFile("model.stl", "model/stl", in_archive=True, in_viewer=False),
    ResultFile(
        "model.obj", "model/obj", in_archive=True, in_viewer=False, listed=False
    ),
    ResultFile(
        "model.mtl", "model/mtl", in_archive=True, in_viewer=False, listed=False
    ),
    ResultFile(
        TEXTURE_NAME, "image/jpeg", in_archive=True, in_viewer=False, listed=False
    ),
    ResultFile(
        "points.ply", "application/octet-stream", in_archive=True, in_viewer=True
    ),
    ResultFile("cameras.json", "application/json", in_archive=True, in_viewer=True),
    ResultFile("report.json", "application/json", in_archive=True, in_viewer=False),
    ResultFile("thumbnail.png", "image/png", in_archive=True, in_viewer=True),
    ResultFile(COVERAGE_NAME, "application/json", in_archive=True, in_viewer=True),
)
# Real-size copies the portal writes beside the result once the owner sets the
# scale: millimetres, except the GLB, in metres (glTF's unit, so AR viewers and
# Blender show the true size). Each replaces its original among the downloads.
SCALED_FILES: dict[str, ResultFile] = {
    "model.glb": ResultFile(
        "model_metres.glb", "model/gltf-binary", in_archive=False, in_viewer=False
    ),
    OBJ_BUNDLE_NAME: ResultFile(
        "model_obj_mm.zip", "application/zip", in_archive=False, in_viewer=False
    ),
    "model.stl": ResultFile(
        "model_mm.stl", "model/stl", in_archive=False, in_viewer=False
    ),
    "points.ply": ResultFile(
        "points_mm.ply", "application/octet-stream", in_archive=False, in_viewer=False
    ),
}
RESULT_MEDIA_TYPES = {
    f.name: f.media_type for f in (*RESULT_FILES, *SCALED_FILES.values())
}


class Preset(enum.Enum):
    """Speed/quality trade-off chosen when a project is created."""

    FAST = "fast"
    BALANCED = "balanced"
    QUALITY = "quality"


class ErrorCode(enum.StrEnum):
    """Why a project failed, each with what to try next (shown on its page).

    The pipeline raises the first group; the portal around it sets the rest.
    """

    advice: str

    def __new__(cls, value: str, advice: str) -> ErrorCode:
        member = str.__new__(cls, value)
        member._value_ = value
        member.advice = advice
        return member

    NO_IMAGES = (
        "no_images",
        "The upload held no usable photos. Upload JPEG or PNG photos of the object.",
    )
    TOO_MANY_IMAGES = (
        "too_many_images",
        "The set has more photos than one project takes. Send fewer photos.",
    )
    ARCHIVE_TOO_LARGE = (
        "archive_too_large",
        "The photos unpack to more than 8 GB. Send fewer or smaller photos.",
    )
    UNREADABLE_IMAGES = (
        "unreadable_images",
        "Some photos could not be read. Export them again as JPEG and upload the set "
        "again.",
    )
    TOO_FEW_REGISTERED = (
        "too_few_registered",
        "The message above names the photos that could not be placed and why, "
        "photo by photo. Re-shoot those views as it says (sharper, brighter, or "
        "closer to their neighbours), add them to the set, then reset and upload "
        "it again.",
    )
    ENGINE_ERROR = (
        "engine_error",
        "The reconstruction engine gave up on this set. Check the photos are sharp "
        "and overlap, then reset and try again.",
    )
    ENGINE_CRASH = (
        "engine_crash",
        "The reconstruction engine crashed. Reset and try again; tell us if it "
        "happens twice.",
    )
    TIME_LIMIT = (
        "time_limit",
        "Processing took longer than allowed. Try the fast preset or fewer photos.",
    )
    OUT_OF_MEMORY = (
        "out_of_memory",
        "The set needed more memory than the server has. Try the fast preset or "
        "fewer, smaller photos.",
    )
    CANCELLED = (
        "cancelled",
        "You cancelled this project. Process it again from the photos already "
        "uploaded, or reset it to upload new ones.",
    )
    WORKER_DIED = (
        "worker_died",
        "The worker stopped several times. Try the fast preset or fewer photos.",
    )
    INTERNAL_ERROR = (
        "internal_error",
        "Something failed on our side. Reset and start again; the credit was refunded.",
    )
    BAD_ARCHIVE = (
        "bad_archive",
        "The zip was refused. Fix the files it names and upload again.",
    )
    PHOTO_COUNT = (
        "photo_count",
        "The zip holds more photos than the project was created for. Reset it and "
        "create it again with the right count.",
    )


class PipelineError(Exception):
    """A reconstruction failed; ``message`` is written for
    the person who sent the photos."""

    def __init__(self, code: ErrorCode | str, message: str) -> None:
        code = ErrorCode(code)
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    def __reduce__(self) -> tuple[type[PipelineError], tuple[str, str]]:
        # Keeps the error picklable across the runner's process boundary.
        return (PipelineError, (self.code.value, self.message))


@dataclass(frozen=True, slots=True)
class Progress:
    stage: str
    stage_index: int
    stage_count: int
    fraction: float
    counters: dict[str, int] = field(default_factory=dict)
    message: str = ""
    # What the stage counts ("photo 31 of 66"); unit "" when it counts nothing.
    unit: str = ""
    done: int = 0
    total: int = 0
    # From the cost model (eta.py): the share of the whole run's predicted time
    # behind us, and the seconds left; None before anything was measured.
    overall: float | None = None
    eta_seconds: float | None = None


ProgressCallback = Callable[[Progress], None]


def ignore_progress(progress: Progress) -> None:
    """Default progress callback."""


CountCallback = Callable[[int, int], None]  # (done, total) inside one step


def ignore_count(done: int, total: int) -> None:
    """Default callback of a step that counts its work."""


@dataclass(frozen=True, slots=True)
class ReconstructionRequest:
    images: tuple[Path, ...]
    out_dir: Path
    workdir: Path
    preset: Preset = Preset.BALANCED
    min_registered_share: float = 0.5
    max_image_pixels: int = 40_000_000
    max_images: int = 500
    texture_size: int = 2048
    preview_max_faces: int = 60_000
    threads: int | None = None
    # Each photo's name in the user's folder or zip, in ``images`` order; empty:
    # the files' own names. cameras.json carries it so the portal finds the photo.
    sources: tuple[str, ...] = ()

    @classmethod
    def from_input_path(
        cls,
        input_path: Path,
        *,
        out_dir: Path,
        workdir: Path,
        **options: object,
    ) -> ReconstructionRequest:
        """Build a request from a directory of photos or a zip of them.

        A zip is extracted into ``workdir/input`` with names flattened, so a
        hostile archive cannot write outside it.
        """
        from projects.pipeline.steps.ingest import collect_named_input

        named = collect_named_input(Path(input_path), Path(workdir) / "input")
        return cls(
            images=tuple(path for path, _ in named),
            sources=tuple(source for _, source in named),
            out_dir=Path(out_dir),
            workdir=Path(workdir),
            **options,  # type: ignore[arg-type]  # the dataclass's own fields
        )


@dataclass(frozen=True, slots=True)
class UnusableImage:
    name: str
    reason: str


@dataclass(frozen=True, slots=True)
class StageTiming:
    stage: str
    seconds: float
    peak_rss_bytes: int


@dataclass(frozen=True, slots=True)
class ReconstructionOutputs:
    glb: Path
    preview_glb: Path
    obj: Path
    mtl: Path
    texture: Path
    points: Path
    cameras: Path
    report: Path
    thumbnail: Path
    archive: Path
    stl: Path
    obj_bundle: Path
    coverage: Path


@dataclass(frozen=True, slots=True)
class CoverageReport:
    """How well the photos saw the surface (coverage.json holds the samples too)."""

    threshold: int  # photos needed to count as well seen
    low_share: float  # share of the surface area seen by fewer than threshold
    sentence: str


@dataclass(frozen=True, slots=True)
class MatchingReport:
    strategy: str  # "exhaustive" or "retrieval", "+rescue" after a second pass
    reason: str
    pairs: int
    verified_pairs: int


@dataclass(frozen=True, slots=True)
class ReconstructionResult:
    outputs: ReconstructionOutputs
    images_total: int
    images_used: int
    images_registered: int
    sparse_points: int
    dense_points: int
    vertices: int
    faces: int
    mean_reprojection_error: float
    timings: tuple[StageTiming, ...]
    unusable_images: tuple[UnusableImage, ...]
    warnings: tuple[str, ...]
    matching: MatchingReport | None = None
    still_backdrop_photos: int = 0  # photos whose still backdrop was masked
    unplaced_images: tuple[UnusableImage, ...] = ()  # readable, but not placed
    coverage: CoverageReport | None = None

    @property
    def seconds(self) -> float:
        return sum(t.seconds for t in self.timings)
