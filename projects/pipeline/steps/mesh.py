"""Mesh: isolate the object in the cloud, screened Poisson, trim, clean, decimate.

Works in the upright frame from ``sparse.upright_transform`` (+Y up), so the
turntable is a horizontal plane under the object.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage
from scipy.spatial import cKDTree

from projects.pipeline import engine
from projects.pipeline.steps.common import robust_diagonal
from projects.pipeline.types import PipelineError

Float = NDArray[np.float64]
MAX_POISSON_POINTS = 150_000
PLANE_SAMPLE = 100_000
# Poisson vertices below this density quantile are trimmed; 0.04 cut away the
# object's grazing-lit base (visible F@0.5 % 0.93 -> 0.96 at 0.01, benchmarks/).
DENSITY_TRIM_QUANTILE = 0.01
BOX_MARGIN = 0.03
# Poisson vertices farther than this share of the cloud's diagonal from every
# point are trimmed: the membrane Poisson stretches across what no photo saw
# around an open scene (a quarter of the surface on the real phone set); on a
# turntable object's closed surface nothing lies that far.
SUPPORT_TRIM = 0.03


@dataclass(frozen=True, slots=True)
class ObjectCloud:
    points: Float
    colors: Float
    normals: Float
    removed_turntable: bool


@dataclass(frozen=True, slots=True)
class Mesh:
    vertices: Float
    faces: NDArray[np.int64]


def _largest_component(points: Float, cell: float) -> NDArray[np.bool_]:
    """Points in the largest blob of an occupancy grid (background specks go)."""
    keys = np.floor((points - points.min(axis=0)) / cell).astype(np.int64)
    grid = np.zeros(keys.max(axis=0) + 1, bool)
    grid[tuple(keys.T)] = True
    labels, count = ndimage.label(
        ndimage.binary_dilation(grid), structure=np.ones((3, 3, 3))
    )
    if count <= 1:
        return np.ones(len(points), bool)
    point_labels = labels[tuple(keys.T)]
    sizes = np.bincount(point_labels, minlength=count + 1)
    sizes[0] = 0
    return point_labels == np.argmax(sizes)


def _plate_thickness(heights: Float, diag: float) -> float:
    """How far above the plane the turntable's noisy layer of points reaches."""
    step = 0.002 * diag
    counts, edges = np.histogram(heights, bins=40, range=(-step * 5, step * 35))
    peak = int(np.argmax(counts[:15]))
    for i in range(peak, len(counts)):
        if counts[i] < 0.08 * counts[peak]:
            return float(edges[i + 1])
    return float(edges[-1])


def isolate_object(
    points: Float, colors: Float, normals: Float, camera_centres: Float
) -> ObjectCloud:
    """Remove the turntable plane, what lies below it, and detached background."""
    diag = robust_diagonal(points)
    removed = False
    if len(points) > 500:
        # The plane from 100k random points is the plane from all of them,
        # at a tenth of the RANSAC time for a million-point dense cloud.
        sample = points
        if len(points) > PLANE_SAMPLE:
            pick = np.random.default_rng(0).choice(len(points), PLANE_SAMPLE, False)
            sample = points[pick]
        plane, inliers = engine.fit_plane(sample, threshold=0.004 * diag)
        n = plane[:3] / np.linalg.norm(plane[:3])
        horizontal = abs(n[1]) > 0.95
        height = -plane[3] / n[1] if horizontal else 0.0
        above = points[:, 1] > height
        cams_above = np.mean(camera_centres[:, 1] > height)
        # A turntable: a horizontal plane with the cameras and most points above it.
        if (
            horizontal
            and len(inliers) > 0.05 * len(sample)
            and above.mean() > 0.5
            and cams_above > 0.8
        ):
            keep = points[:, 1] > height + _plate_thickness(points[:, 1] - height, diag)
            points, colors, normals = points[keep], colors[keep], normals[keep]
            removed = True
    keep = _largest_component(points, cell=robust_diagonal(points) / 60)
    points, colors, normals = points[keep], colors[keep], normals[keep]
    if len(points) > 50:
        idx = engine.statistical_inliers(points, neighbours=20, std_ratio=2.5)
        points, colors, normals = points[idx], colors[idx], normals[idx]
    return ObjectCloud(points, colors, normals, removed)


def build_mesh(
    cloud: ObjectCloud,
    *,
    depth: int,
    target_faces: int,
    threads: int | None,
    on_surface: Callable[[], None] = lambda: None,
) -> Mesh:
    """Screened Poisson, then density, support and bounding-volume trimming and
    clean-up."""
    if len(cloud.points) < 100:
        raise PipelineError(
            "engine_error", "Too few surface points were found to build a mesh."
        )
    points, normals, colors = cloud.points, cloud.normals, cloud.colors
    if len(points) > MAX_POISSON_POINTS:  # Poisson time grows with samples, not detail
        pick = np.random.default_rng(0).choice(
            len(points), MAX_POISSON_POINTS, replace=False
        )
        points, normals, colors = points[pick], normals[pick], colors[pick]
    verts, faces, density, _ = engine.poisson(points, normals, colors, depth, threads)
    on_surface()
    lo, hi = np.percentile(cloud.points, [0.5, 99.5], axis=0)
    margin = BOX_MARGIN * np.linalg.norm(hi - lo)
    inside = np.all((verts > lo - margin) & (verts < hi + margin), axis=1)
    # Poisson invents surface where nothing was seen (e.g. the underside);
    # such vertices carry low sample density.
    dense_enough = density > np.quantile(density, DENSITY_TRIM_QUANTILE)
    nearest, _ = cKDTree(cloud.points).query(verts, workers=threads or -1)
    supported = nearest < SUPPORT_TRIM * np.linalg.norm(hi - lo)
    keep_vertex = inside & dense_enough & supported
    faces = faces[np.all(keep_vertex[faces], axis=1)]
    if len(faces) == 0:
        raise PipelineError(
            "engine_error", "The surface could not be separated from its surroundings."
        )
    verts, faces = engine.clean_and_decimate(
        verts, faces, target_faces, min_island_share=0.05
    )
    return Mesh(verts, faces)


def decimate(surface: Mesh, target_faces: int) -> Mesh:
    verts, faces = engine.clean_and_decimate(
        surface.vertices, surface.faces, target_faces, min_island_share=0.0
    )
    return Mesh(verts, faces)
