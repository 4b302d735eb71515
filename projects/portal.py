"""Reads behind the portal's HTML pages: rows for lists, viewer files, source photos.

Visibility is never decided here: callers pass a project they got from
``selectors.project_get`` (owner) or ``selectors.project_get_shared`` (link).
"""

import re
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import IO

from django.core.files.storage import default_storage
from django.http import Http404

from projects.archive import PHOTO_FORMATS
from projects.models import Project
from projects.pipeline.types import RESULT_FILES, ErrorCode

# The vendored Draco decoder's folder under the static root (scripts/vendor_three.py).
DRACO_DIR = "vendor/three/jsm/libs/draco/gltf/"
# Result files the viewer may fetch, and their content types.
VIEWER_FILES = {f.name: f.media_type for f in RESULT_FILES if f.in_viewer}
PHOTO_TYPES = {
    suffix: f"image/{kind.lower()}" for suffix, kind in PHOTO_FORMATS.items()
}
# A photo's name in the user's zip: a member path, never used as a file path here.
_PHOTO_NAME = re.compile(r"^[^\\\x00-\x1f]{1,500}$")

FAILURE_ADVICE_DEFAULT = (
    "Reset the project to upload the photos again, or start a new project."
)


# What each engine stage is called on the pages (the project page's status.js
# names them the same way).
STAGE_LABELS = {
    "starting": "Starting",
    "ingest": "Reading the photos",
    "features": "Finding features",
    "matching": "Matching photos",
    "sparse": "Placing the cameras",
    "dense": "Measuring depth",
    "mesh": "Building the surface",
    "texture": "Painting the texture",
    "export": "Writing the files",
    "done": "Done",
}


@dataclass(frozen=True, slots=True)
class ProjectRow:
    project: Project
    thumbnail: bool
    size: int
    running: bool  # queued or processing: the list follows its progress
    percent: int
    stage: str


def project_rows(projects: list[Project]) -> list[ProjectRow]:
    """One row per project for the list page."""
    rows = []
    for project in projects:
        progress = project.progress if isinstance(project.progress, dict) else {}
        files = progress.get("files", {})
        processing = project.status == Project.Status.PROCESSING
        stage = str(progress.get("stage") or "starting") if processing else ""
        rows.append(
            ProjectRow(
                project=project,
                thumbnail=project.status == Project.Status.DONE
                and "thumbnail.png" in files,
                size=project.filesize,
                running=processing or project.status == Project.Status.QUEUED,
                percent=int(float(progress.get("overall") or 0) * 100)
                if processing
                else 0,
                stage=STAGE_LABELS.get(stage, stage.replace("_", " ").capitalize()),
            )
        )
    return rows


def failure_advice(*, project: Project) -> str:
    """What to try next after a failure, from the error code's own advice."""
    try:
        return ErrorCode(project.error_code).advice
    except ValueError:  # an API error code, or none
        return FAILURE_ADVICE_DEFAULT


def viewer_files(*, project: Project) -> dict[str, int]:
    """Result files of a finished project that the viewer may load, with their sizes."""
    if project.status != Project.Status.DONE or not project.result_path:
        return {}
    files = (
        project.progress.get("files", {}) if isinstance(project.progress, dict) else {}
    )
    return {name: size for name, size in files.items() if name in VIEWER_FILES}


def viewer_file_open(*, project: Project, name: str) -> tuple[IO[bytes], str]:
    """Open one viewer file of a finished project; Http404 when it is not there."""
    if name not in viewer_files(project=project):
        raise Http404("No such file.")
    path = f"{project.result_path}/{name}"
    try:
        return default_storage.open(path, "rb"), VIEWER_FILES[name]
    except FileNotFoundError as exc:
        raise Http404("No such file.") from exc


def project_photo_read(
    *, project: Project, name: str, max_bytes: int = 64_000_000
) -> tuple[bytes, str]:
    """The bytes of one source photo, found by its name in the project's input zip.

    Names come from cameras.json's ``source``: the member's path in the zip the
    user sent, whatever ingest renamed the photo to. Results made before it was
    written name the base name only, so that still matches a member's base name.
    Http404 for anything that is not a photo of this project.
    """
    suffix = PurePosixPath(name).suffix.lower()
    if (
        not _PHOTO_NAME.match(name)
        or suffix not in PHOTO_TYPES
        or not project.input_path
    ):
        raise Http404("No such photo.")
    try:
        with (
            default_storage.open(project.input_path, "rb") as fh,
            zipfile.ZipFile(fh) as zf,
        ):
            members = [info for info in zf.infolist() if not info.is_dir()]
            info = next(
                (m for m in members if m.filename == name),
                next(
                    (m for m in members if PurePosixPath(m.filename).name == name),
                    None,
                ),
            )
            if info is not None:
                if info.file_size > max_bytes:
                    raise Http404("This photo is too large to show here.")
                return zf.read(info), PHOTO_TYPES[suffix]
    except (FileNotFoundError, zipfile.BadZipFile) as exc:
        raise Http404("No such photo.") from exc
    raise Http404("No such photo.")
