"""Coverage: how many photos saw each part of the surface, and where to re-shoot.

A photo counts for a face when the face's centre is unoccluded from it (the
texture step's Embree rays), inside its frame and seen at most 75 degrees off
head-on; fewer than THRESHOLD such photos leave a surface that is guessed more
than measured. The model frame is upright (+Y) with +Z towards the first
placed photo, so a region is named as seen from that photo.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from projects.pipeline import engine
from projects.pipeline.engine import SparseModel
from projects.pipeline.types import CoverageReport

THRESHOLD = 3
MIN_COS = math.cos(math.radians(75))
MAX_FACES = 40_000  # faces tested per photo; a larger mesh is sampled
MAX_SAMPLES = 20_000
NOTABLE_SHARE = 0.05  # below this the report stays quiet
# Six regions by the dominant axis of a face's normal, in the model frame.
_REGIONS = (
    (np.array([0.0, -1.0, 0.0]), "the underside"),
    (np.array([0.0, 1.0, 0.0]), "the top"),
    (np.array([0.0, 0.0, 1.0]), "the front"),
    (np.array([0.0, 0.0, -1.0]), "the back"),
    (np.array([1.0, 0.0, 0.0]), "the right side"),
    (np.array([-1.0, 0.0, 0.0]), "the left side"),
)


@dataclass(frozen=True, slots=True)
class SurfaceCoverage:
    report: CoverageReport
    positions: NDArray[np.float32]  # samples of the low-coverage surface, N x 3
    counts: NDArray[np.int32]  # photos that saw each sample


def _photo_counts(
    vertices: NDArray[np.float64],
    faces: NDArray[np.int64],
    ids: NDArray[np.int64],
    normals: NDArray[np.float64],
    model: SparseModel,
) -> NDArray[np.int32]:
    centroids = vertices[faces[ids]].mean(axis=1)
    counts = np.zeros(len(ids), np.int32)
    centres = [cam.centre for cam in model.cameras]
    visibility = engine.visible_faces(vertices, faces, centres, face_ids=ids)
    for cam, visible in zip(model.cameras, visibility, strict=True):
        view = cam.centre - centroids
        cos = np.einsum("fd,fd->f", normals, view) / np.linalg.norm(view, axis=1)
        local = centroids @ cam.R.T + cam.t
        z = np.maximum(local[:, 2], 1e-12)
        u = cam.K[0, 0] * local[:, 0] / z + cam.K[0, 2]
        v = cam.K[1, 1] * local[:, 1] / z + cam.K[1, 2]
        inside = (
            (local[:, 2] > 0) & (u >= 0) & (u < cam.width) & (v >= 0) & (v < cam.height)
        )
        counts += visible & inside & (cos > MIN_COS)
    return counts


def _sentence(
    low_share: float, region_shares: list[tuple[str, float]], first_photo: str
) -> str:
    """The report's advice: what was seen too little, where, and what to shoot."""
    if low_share < 0.005:
        return f"Every part of the surface was seen by at least {THRESHOLD} photos."
    seen = f"seen by fewer than {THRESHOLD} photos"
    named = [
        (name, share)
        for name, share in region_shares
        if share >= max(0.01, 0.2 * low_share)
    ][:2]
    if not named:
        return (
            f"Small patches all over the surface were {seen} ({low_share:.0%} of it): "
            "take more photos, closer and from more angles."
        )
    sides = {"the front", "the back", "the left side", "the right side"}
    frame = (
        f", as seen from the first photo ({first_photo})"
        if any(name in sides for name, _ in named)
        else ""
    )
    hint = {
        "the underside": "turn the object over and take a second round",
        "the top": "take a round from higher up, looking down",
    }.get(named[0][0], "take more photos from that side")
    if len(named) == 1 and named[0][1] >= 0.8 * low_share:
        where = named[0][0][0].upper() + named[0][0][1:]
        frame = f"{frame}," if frame else ""
        return f"{where}{frame} was {seen} ({low_share:.0%} of the surface): {hint}."
    parts = " and ".join(f"{name} ({share:.0%})" for name, share in named)
    return (
        f"Parts of the surface were {seen} ({low_share:.0%} of it), mostly "
        f"{parts}{frame}: {hint}."
    )


def surface_coverage(
    vertices: NDArray[np.float64],
    faces: NDArray[np.int64],
    model: SparseModel,
    *,
    first_photo: str,
) -> SurfaceCoverage:
    """Count the photos that saw each face; sample the poorly seen surface."""
    tri = vertices[faces]
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    area = np.linalg.norm(cross, axis=1) / 2
    normals = cross / (2 * area[:, None] + 1e-12)
    rng = np.random.default_rng(0)  # the same photos give the same report
    ids = np.arange(len(faces))
    if len(ids) > MAX_FACES:  # a uniform sample of faces keeps area shares unbiased
        ids = np.sort(rng.choice(len(faces), MAX_FACES, replace=False))
    counts = _photo_counts(vertices, faces, ids, normals[ids], model)
    total = float(area[ids].sum()) or 1.0
    low = counts < THRESHOLD
    low_share = float(area[ids][low].sum()) / total
    region = np.argmax(normals[ids] @ np.array([r for r, _ in _REGIONS]).T, axis=1)
    region_shares = sorted(
        (
            (name, float(area[ids][low & (region == k)].sum()) / total)
            for k, (_, name) in enumerate(_REGIONS)
        ),
        key=lambda pair: -pair[1],
    )
    # Samples as dense as 40,000 over the whole surface would be, at most 20,000.
    n = min(MAX_SAMPLES, round(2 * MAX_SAMPLES * low_share)) if low.any() else 0
    low_ids = ids[low]
    weights = area[low_ids] / max(float(area[low_ids].sum()), 1e-30)
    pick = rng.choice(len(low_ids), n, p=weights) if n else np.zeros(0, np.int64)
    r1, r2 = np.sqrt(rng.random(n)), rng.random(n)
    bary = np.stack([1 - r1, r1 * (1 - r2), r1 * r2], axis=1)
    chosen = low_ids[pick]
    diagonal = float(np.linalg.norm(vertices.max(axis=0) - vertices.min(axis=0)))
    # Lifted off the surface a little so an overlay is not hidden inside it.
    positions = np.einsum("nk,nkd->nd", bary, tri[chosen]) + normals[chosen] * (
        0.002 * diagonal
    )
    return SurfaceCoverage(
        report=CoverageReport(
            threshold=THRESHOLD,
            low_share=round(low_share, 4),
            sentence=_sentence(low_share, region_shares, first_photo),
        ),
        positions=positions.astype(np.float32),
        counts=counts[low][pick].astype(np.int32),
    )


def notable(report: CoverageReport) -> bool:
    """Whether the result's warnings should carry the sentence."""
    return report.low_share >= NOTABLE_SHARE


def write_coverage(coverage: SurfaceCoverage, path: Path) -> None:
    report = coverage.report
    path.write_text(
        json.dumps(
            {
                "threshold": report.threshold,
                "low_share": report.low_share,
                "sentence": report.sentence,
                "samples": {
                    "positions": [
                        round(float(x), 5) for x in coverage.positions.ravel()
                    ],
                    "counts": coverage.counts.tolist(),
                },
            },
            separators=(",", ":"),
        )
    )
