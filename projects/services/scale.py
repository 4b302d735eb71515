"""Real size: the owner's two points and distance give millimetres per model unit.

Setting it writes real-size copies of the downloads (``real_size``) under the
result, then records the scale in one short locked update; the originals stay
as the pipeline wrote them, so the viewer keeps its frame.
"""

import math
import secrets
from collections.abc import Sequence
from pathlib import Path

from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction

from openscan_portal.exceptions import ApplicationError
from projects.models import Project
from projects.pipeline.types import SCALED_FILES
from projects.services.uploads import project_lock
from projects.storage import storage_delete_tree, temp_dir, temp_dir_remove

# A tape measure's range, and the sizes of things a photo set can show.
MAX_DISTANCE_MM = 100_000.0
MIN_SIZE_MM, MAX_SIZE_MM = 0.1, 100_000.0
# Points come from a click on the model: within its box give or take this share
# of its diagonal, and at least this share of it apart.
POINT_SLACK, MIN_SEPARATION = 0.05, 0.005


def _point(value: object, label: str) -> tuple[float, float, float]:
    if (
        not isinstance(value, Sequence)
        or isinstance(value, str)
        or len(value) != 3
        or not all(
            isinstance(c, int | float) and not isinstance(c, bool) for c in value
        )
        or not all(math.isfinite(c) for c in value)
    ):
        raise ApplicationError(
            f"{label} must be three finite numbers [x, y, z] in the model's frame.",
            code="invalid_point",
        )
    x, y, z = (float(c) for c in value)
    return x, y, z


def _distance(value: object) -> float:
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ApplicationError(
            "distance_mm must be a number of millimetres above 0.",
            code="invalid_distance",
        )
    if value > MAX_DISTANCE_MM:
        raise ApplicationError(
            f"distance_mm is {value:g} mm, over {MAX_DISTANCE_MM / 1000:g} m: type "
            "the distance between the two points in millimetres.",
            code="invalid_distance",
        )
    return float(value)


def _not_ready() -> ApplicationError:
    return ApplicationError(
        "The real size can be set once the model is ready.",
        status=409,
        code="not_done",
    )


def _files(project: Project) -> dict[str, int]:
    progress = project.progress if isinstance(project.progress, dict) else {}
    return dict(progress.get("files", {}))


def _fetch(project: Project, names: list[str], into: Path) -> None:
    for name in names:
        with (
            default_storage.open(f"{project.result_path}/{name}", "rb") as src,
            (into / name).open("wb") as dst,
        ):
            while chunk := src.read(1 << 20):
                dst.write(chunk)


def project_scale_set(
    *, project: Project, point_a: object, point_b: object, distance_mm: object
) -> Project:
    """Set the real size from two points on the model and their distance in mm.

    Raises:
        ApplicationError: 400 for points or a distance that cannot be right,
            409 when the project has no model (or lost it meanwhile).
    """
    from projects.pipeline.gltf import glb_bounds  # the web process loads it late
    from projects.pipeline.real_size import write_real_size

    a, b = _point(point_a, "point_a"), _point(point_b, "point_b")
    distance = _distance(distance_mm)
    if project.status != Project.Status.DONE or not project.result_path:
        raise _not_ready()
    originals = [name for name in SCALED_FILES if name in _files(project)]
    if "model.glb" not in originals:
        raise ApplicationError(
            "This result has no model.glb to measure.", status=409, code="no_model"
        )
    work = temp_dir()
    try:
        _fetch(project, originals, work)
        low, high = glb_bounds(work / "model.glb")
        diagonal = math.dist(low, high)
        slack = POINT_SLACK * diagonal
        for point, label in ((a, "point_a"), (b, "point_b")):
            if any(
                c < lo - slack or c > hi + slack
                for c, lo, hi in zip(point, low, high, strict=True)
            ):
                raise ApplicationError(
                    f"{label} is not on the model: pick both points on its surface.",
                    code="invalid_point",
                )
        separation = math.dist(a, b)
        if separation < MIN_SEPARATION * diagonal:
            raise ApplicationError(
                "The two points are too close together: pick two points farther "
                "apart (a longer known distance also gives a more exact size).",
                code="invalid_point",
            )
        mm_per_unit = distance / separation
        dimensions = [round(float(v) * mm_per_unit, 2) for v in high - low]
        if not MIN_SIZE_MM <= max(dimensions) <= MAX_SIZE_MM:
            raise ApplicationError(
                f"With {distance:g} mm between the points the model would be "
                f"{max(dimensions) / 1000:g} m long: check the distance is in "
                "millimetres.",
                code="invalid_distance",
            )
        copies = write_real_size(work, work / "real-size", mm_per_unit)
        prefix = f"{project.result_path}/real-size-{secrets.token_hex(4)}"
        for name in copies:
            with (work / "real-size" / name).open("rb") as fh:
                default_storage.save(f"{prefix}/{name}", File(fh, name=name))
    finally:
        temp_dir_remove(work)
    with transaction.atomic():
        locked = project_lock(project)
        current = (
            locked.status == Project.Status.DONE
            and locked.result_path == project.result_path
        )
        if current:
            _forget_copies_on_commit(locked)
            locked.mm_per_unit = mm_per_unit
            locked.scale = {
                "point_a": list(a),
                "point_b": list(b),
                "distance_mm": distance,
                "dimensions_mm": dimensions,
                "prefix": prefix,
                "files": copies,
            }
            locked.save(update_fields=["mm_per_unit", "scale", "updated_at"])
    if not current:  # reset or reprocessed meanwhile: the copies measured the old
        storage_delete_tree(prefix)
        raise _not_ready()
    return locked


def _forget_copies_on_commit(project: Project) -> None:
    old = project.scale.get("prefix") if isinstance(project.scale, dict) else None
    if old:
        transaction.on_commit(lambda: storage_delete_tree(old))


@transaction.atomic
def project_scale_clear(*, project: Project) -> Project:
    """Back to the reconstruction's own units; the real-size copies are deleted."""
    locked = project_lock(project)
    _forget_copies_on_commit(locked)
    locked.mm_per_unit = None
    locked.scale = {}
    locked.save(update_fields=["mm_per_unit", "scale", "updated_at"])
    return locked


def project_scale_forget(*, project: Project) -> None:
    """For a new result or a reset (inside their transaction, on the locked row):
    the old scale measured another model. The caller saves the row."""
    _forget_copies_on_commit(project)
    project.mm_per_unit = None
    project.scale = {}


def project_scale_change(
    *,
    project: Project,
    clear: bool,
    point_a: object = None,
    point_b: object = None,
    distance_mm: object = None,
) -> Project:
    """Clear the real size, or set it from two points and their distance: the one
    entry point for the portal's view and the REST API."""
    if clear:
        return project_scale_clear(project=project)
    return project_scale_set(
        project=project, point_a=point_a, point_b=point_b, distance_mm=distance_mm
    )
