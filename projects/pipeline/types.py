"""Public value types of the reconstruction pipeline (no engine imports here)."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp"})


@dataclass(frozen=True, slots=True)
class ResultFile:
    """One file a finished reconstruction leaves in ``out_dir``."""

    name: str
    media_type: str
    in_archive: bool  # packed into result.zip
    in_viewer: bool  # the portal's 3D viewer may fetch it


ARCHIVE_NAME = "result.zip"
TEXTURE_NAME = "texture.jpg"
# The output contract: export writes these, the portal stores, lists, serves and
# links exactly these (selectors, viewer files, the wire download URL pattern).
RESULT_FILES: tuple[ResultFile, ...] = (
    ResultFile(ARCHIVE_NAME, "application/zip", in_archive=False, in_viewer=False),
    ResultFile("model.glb", "model/gltf-binary", in_archive=True, in_viewer=True),
    ResultFile(
        "model_preview.glb", "model/gltf-binary", in_archive=True, in_viewer=True
    ),
    ResultFile("model.obj", "model/obj", in_archive=True, in_viewer=False),
    ResultFile("model.mtl", "model/mtl", in_archive=True, in_viewer=False),
    ResultFile(TEXTURE_NAME, "image/jpeg", in_archive=True, in_viewer=False),
    ResultFile(
        "points.ply", "application/octet-stream", in_archive=True, in_viewer=True
    ),
    ResultFile("cameras.json", "application/json", in_archive=True, in_viewer=True),
    ResultFile("report.json", "application/json", in_archive=True, in_viewer=False),
    ResultFile("thumbnail.png", "image/png", in_archive=True, in_viewer=True),
)
RESULT_MEDIA_TYPES = {f.name: f.media_type for f in RESULT_FILES}


class Preset(enum.Enum):
    """Speed/quality trade-off chosen when a project is created."""

    FAST = "fast"
    BALANCED = "balanced"
    QUALITY = "quality"


class PipelineError(Exception):
    """A reconstruction failed; ``message`` is written for the person who sent the photos.

    ``code`` is one of: no_images, unreadable_images, too_few_registered,
    engine_error, time_limit, out_of_memory, cancelled, engine_crash.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    def __reduce__(self) -> tuple[type[PipelineError], tuple[str, str]]:
        # Keeps the error picklable across the runner's process boundary.
        return (PipelineError, (self.code, self.message))


@dataclass(frozen=True, slots=True)
class Progress:
    stage: str
    stage_index: int
    stage_count: int
    fraction: float
    counters: dict[str, int] = field(default_factory=dict)
    message: str = ""


ProgressCallback = Callable[[Progress], None]


def ignore_progress(progress: Progress) -> None:
    """Default progress callback."""


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
        from projects.pipeline.steps.ingest import collect_input

        images = collect_input(Path(input_path), Path(workdir) / "input")
        return cls(
            images=images, out_dir=Path(out_dir), workdir=Path(workdir), **options
        )  # type: ignore[arg-type]  # options are the dataclass's own fields


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
    unplaced_images: tuple[UnusableImage, ...] = ()  # readable, but not placed

    @property
    def seconds(self) -> float:
        return sum(t.seconds for t in self.timings)
