"""Sparse reconstruction: incremental mapping, the registration check, clean-up
and an upright, object-centred output frame (glTF's +Y up)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from projects.pipeline import engine
from projects.pipeline.engine import SparseCamera, SparseModel
from projects.pipeline.steps import diagnose
from projects.pipeline.types import PipelineError


@dataclass(frozen=True, slots=True)
class SparseOutcome:
    model: SparseModel
    unplaced: dict[str, str]  # photo name -> why it could not be placed


def reconstruct_sparse(
    *,
    database: Path,
    image_dir: Path,
    out_dir: Path,
    names: Sequence[str],
    min_share: float,
    on_registered: Callable[[int], None],
    rescue: Callable[[list[str]], int],
    lighter_bundle_adjustment: bool = False,
) -> SparseOutcome:
    """Map the matched photos; give unplaced ones a second matching pass.

    Raises ``too_few_registered`` below ``min_share``, naming the photos and why.
    """
    total = len(names)

    def run(resume: bool) -> SparseModel | None:
        registered = [2 if not resume else 0]  # mapping starts from an initial pair

        def next_image() -> None:
            registered[0] += 1
            on_registered(min(registered[0], total))

        return engine.map_incremental(
            database=database,
            image_dir=image_dir,
            out_dir=out_dir,
            on_image=next_image,
            lighter_bundle_adjustment=lighter_bundle_adjustment,
            resume=resume,
        )

    model = run(resume=False)
    unplaced = _unplaced(model, names)
    if unplaced and rescue(unplaced) > 0:
        model = run(resume=model is not None)
        unplaced = _unplaced(model, names)
    reasons = (
        diagnose.explain_unplaced(
            unplaced,
            names,
            image_dir,
            engine.keypoint_counts(database),
            engine.verified_inliers(database),
            other_models=model.other_models if model else (),
        )
        if unplaced
        else {}
    )
    count = total - len(unplaced)
    if model is None or count < max(3, int(np.ceil(min_share * total))):
        raise PipelineError(
            "too_few_registered",
            f"only {count} of {total} photos could be placed. "
            + diagnose.summary_sentence(reasons),
        )
    return SparseOutcome(model, reasons)


def _unplaced(model: SparseModel | None, names: Sequence[str]) -> list[str]:
    placed = {c.name for c in model.cameras} if model else set()
    return [n for n in names if n not in placed]


def clean_points(model: SparseModel) -> SparseModel:
    """Drop points seen by two photos only, with large errors, or statistical outliers.

    A handful of such points far from the object wreck a Poisson surface.
    """
    keep = (model.track_lengths >= 3) & (model.errors < 2.0)
    if keep.sum() < 100:  # tiny sets: keep the short tracks rather than nothing
        keep = model.errors < 2.0
    idx = np.flatnonzero(keep)
    if len(idx) > 50:
        idx = idx[
            engine.statistical_inliers(model.points[idx], neighbours=12, std_ratio=2.0)
        ]
    return replace(
        model,
        points=model.points[idx],
        colors=model.colors[idx],
        track_lengths=model.track_lengths[idx],
        errors=model.errors[idx],
        visibility=tuple(model.visibility[i] for i in idx),
    )


def upright_transform(model: SparseModel) -> tuple[np.ndarray, np.ndarray]:
    """Rotation and translation taking the SfM frame to an upright, centred one.

    Up is the axis of the camera rings (normal of the plane through the camera
    centres), signed to agree with the photos' own up direction; the origin is
    the centre of the sparse points.
    """
    centres = np.array([c.centre for c in model.cameras])
    photo_up = -np.mean([c.R[1] for c in model.cameras], axis=0)  # image -y in world
    up = photo_up / (np.linalg.norm(photo_up) + 1e-12)
    if len(centres) >= 6:
        _, s, vt = np.linalg.svd(centres - centres.mean(axis=0))
        normal = vt[2]
        if s[1] > 2 * s[2]:  # the centres span a plane: trust the ring axis
            up = normal if normal @ up > 0 else -normal
    # Build a basis with +Y = up, +Z towards the first camera (a pleasant first view).
    forward = centres[0] - model.points.mean(axis=0)
    forward -= (forward @ up) * up
    if np.linalg.norm(forward) < 1e-9:
        forward = np.cross(up, [1.0, 0.0, 0.0])
    forward /= np.linalg.norm(forward)
    right = np.cross(up, forward)
    rot = np.stack([right, up, forward])  # rows: new axes in old coordinates
    lo, hi = np.percentile(model.points, [2, 98], axis=0)
    centre = (lo + hi) / 2
    return rot, -rot @ centre


def apply_transform(
    model: SparseModel, rot: np.ndarray, trans: np.ndarray
) -> SparseModel:
    """x_new = rot @ x_old + trans, for points and camera poses."""
    cameras = tuple(
        SparseCamera(
            name=c.name,
            width=c.width,
            height=c.height,
            K=c.K,
            radial=c.radial,
            R=c.R @ rot.T,
            t=c.t - c.R @ rot.T @ trans,
        )
        for c in model.cameras
    )
    return replace(model, cameras=cameras, points=model.points @ rot.T + trans)


def spread_cameras(
    model: SparseModel, limit: int, among: Sequence[int] = ()
) -> list[int]:
    """Up to ``limit`` photos spread evenly around the object (farthest-point
    order over the camera centres from the first), independent of file order."""
    pool = list(among) or list(range(len(model.cameras)))
    if len(pool) <= limit:
        return pool
    centres = np.array([model.cameras[i].centre for i in pool])
    chosen = [0]
    dist = np.linalg.norm(centres - centres[0], axis=1)
    while len(chosen) < limit:
        nxt = int(np.argmax(dist))
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(centres - centres[nxt], axis=1))
    return sorted(pool[i] for i in chosen)
