"""Dense points on the CPU: plane-sweep depth maps, consistency filtering, fusion.

COLMAP's PatchMatch needs CUDA, so on CPU every registered photo gets a depth
map by sweeping fronto-parallel planes through the depth range its sparse points
span, scoring each plane by the normalised cross-correlation (NCC) with its best
neighbours (the best half, so an occluded neighbour does not veto a depth).
Depths that disagree with neighbouring depth maps are dropped; the rest are
fused into a coloured, oriented point cloud on a voxel grid.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from projects.pipeline.engine import SparseModel

F32 = NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class DenseConfig:
    max_size: int
    planes: int
    neighbours: int
    window: int = 7
    min_ncc: float = 0.55
    min_texture: float = 0.012  # local std-dev of grey (0..1) below which a pixel is blank
    depth_tolerance: float = 0.01  # relative, for geometric consistency
    min_consistent: int = 2


@dataclass(slots=True)
class _View:
    gray: F32
    color: NDArray[np.uint8]
    K: NDArray[np.float64]  # pixel-index convention (pixel centres at integers)
    R: NDArray[np.float64]
    t: NDArray[np.float64]
    depth_range: tuple[float, float]
    neighbours: list[int]
    depth: F32 | None = None
    normal: F32 | None = None


@dataclass(frozen=True, slots=True)
class DenseCloud:
    points: NDArray[np.float64]
    colors: NDArray[np.float64]  # 0..1
    normals: NDArray[np.float64]
    depth_maps: int


def _load_view(model: SparseModel, index: int, image_dir: Path, max_size: int) -> _View:
    cam = model.cameras[index]
    bgr = cv2.imread(str(image_dir / cam.name), cv2.IMREAD_COLOR)
    scale = min(1.0, max_size / max(cam.width, cam.height))
    w, h = round(cam.width * scale), round(cam.height * scale)
    sx, sy = w / cam.width, h / cam.height
    small = cv2.resize(bgr, (w, h), interpolation=cv2.INTER_AREA)
    K = np.array(
        [[cam.K[0, 0] * sx, 0, cam.K[0, 2] * sx - 0.5], [0, cam.K[1, 1] * sy, cam.K[1, 2] * sy - 0.5], [0, 0, 1]]
    )
    if abs(cam.radial) > 1e-6:  # SIMPLE_RADIAL k1 is OpenCV's k1 on normalised coordinates
        small = cv2.undistort(small, K, np.array([cam.radial, 0, 0, 0]))
    rgb = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
    gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.float32) / 255.0
    return _View(gray, rgb, K, cam.R, cam.t, (0.0, 0.0), [])


def _select_neighbours(model: SparseModel, count: int) -> tuple[list[list[int]], list[tuple[float, float]]]:
    """Neighbours sharing many sparse points at a useful triangulation angle."""
    n = len(model.cameras)
    incidence = np.zeros((len(model.points), n), np.float32)
    for p, cams in enumerate(model.visibility):
        incidence[p, cams] = 1.0
    shared = incidence.T @ incidence
    centres = np.array([c.centre for c in model.cameras])
    neighbours: list[list[int]] = []
    ranges: list[tuple[float, float]] = []
    for i, cam in enumerate(model.cameras):
        seen = incidence[:, i] > 0
        anchor = model.points[seen].mean(axis=0) if seen.any() else model.points.mean(axis=0)
        a = centres - anchor
        a /= np.linalg.norm(a, axis=1, keepdims=True)
        angle = np.degrees(np.arccos(np.clip(a @ a[i], -1, 1)))
        # Prefer 10-25 degrees: enough baseline for depth, little appearance change.
        weight = np.exp(-((np.clip(angle, 0, 60) - 17.0) ** 2) / (2 * 10.0**2)) * (angle > 3) * (angle < 50)
        score = shared[i] * weight
        score[i] = 0
        order = [int(j) for j in np.argsort(-score) if score[j] > 0][:count]
        neighbours.append(order)
        pts = model.points[seen] if seen.sum() >= 10 else model.points
        z = (pts @ cam.R.T + cam.t)[:, 2]
        z = z[z > 0]
        lo, hi = (np.percentile(z, [1, 99]) if len(z) else (0.1, 10.0))
        ranges.append((float(lo) * 0.85, float(hi) * 1.15))
    return neighbours, ranges


def _box(img: F32, k: int) -> F32:
    return cv2.blur(img, (k, k), borderType=cv2.BORDER_REFLECT)


def _depth_map(views: list[_View], i: int, cfg: DenseConfig) -> None:
    ref = views[i]
    h, w = ref.gray.shape
    k = cfg.window
    mu_r = _box(ref.gray, k)
    var_r = np.maximum(_box(ref.gray * ref.gray, k) - mu_r * mu_r, 0)
    inv_k = np.linalg.inv(ref.K)
    lo, hi = ref.depth_range
    inv_depths = np.linspace(1.0 / lo, 1.0 / hi, cfg.planes)
    keep = max(1, math.ceil(len(ref.neighbours) / 2))
    cost = np.empty((cfg.planes, h, w), np.float32)
    rel = []
    for j in ref.neighbours:
        nb = views[j]
        r_ji = nb.R @ ref.R.T
        rel.append((nb, r_ji, nb.t - r_ji @ ref.t))
    normal = np.array([[0.0, 0.0, 1.0]])
    for d, inv_d in enumerate(inv_depths):
        scores = np.empty((len(rel), h, w), np.float32)
        for n, (nb, r_ji, t_ji) in enumerate(rel):
            hom = nb.K @ (r_ji + t_ji[:, None] @ normal * inv_d) @ inv_k
            warped = cv2.warpPerspective(
                nb.gray, hom, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                # NaN would poison cv2.blur's running sums; 0 just scores low.
                borderMode=cv2.BORDER_CONSTANT, borderValue=0.0,
            )
            mu_w = _box(warped, k)
            var_w = _box(warped * warped, k) - mu_w * mu_w
            cov = _box(ref.gray * warped, k) - mu_r * mu_w
            scores[n] = cov / np.sqrt(var_r * np.maximum(var_w, 0) + 1e-6)
        if keep < len(rel):
            scores.sort(axis=0)
            cost[d] = 1.0 - scores[-keep:].mean(axis=0)
        else:
            cost[d] = 1.0 - scores.mean(axis=0)
    best = np.argmin(cost, axis=0)
    rows, cols = np.indices((h, w))
    c1 = cost[best, rows, cols]
    inner = np.clip(best, 1, cfg.planes - 2)
    c0, c2 = cost[inner - 1, rows, cols], cost[inner + 1, rows, cols]
    denom = c0 - 2 * c1 + c2
    offset = np.where(denom > 1e-6, 0.5 * (c0 - c2) / np.maximum(denom, 1e-6), 0.0)
    step = inv_depths[1] - inv_depths[0]
    inv = inv_depths[best] + np.clip(offset, -0.5, 0.5) * step
    valid = (
        (1.0 - c1 > cfg.min_ncc)
        & (np.sqrt(var_r) > cfg.min_texture)
        & (best > 0)
        & (best < cfg.planes - 1)
    )
    depth = np.where(valid, 1.0 / inv, 0.0).astype(np.float32)
    ref.depth = depth
    ref.normal = _normals_from_depth(depth, inv_k)


def _backproject(depth: F32, inv_k: NDArray[np.float64]) -> F32:
    h, w = depth.shape
    u, v = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    rays = np.stack([u, v, np.ones_like(u)], -1) @ inv_k.T.astype(np.float32)
    return rays * depth[..., None]


def _normals_from_depth(depth: F32, inv_k: NDArray[np.float64]) -> F32:
    pts = _backproject(depth, inv_k)
    du = np.zeros_like(pts)
    dv = np.zeros_like(pts)
    du[:, 1:-1] = pts[:, 2:] - pts[:, :-2]
    dv[1:-1] = pts[2:] - pts[:-2]
    n = np.cross(du, dv)
    n /= np.linalg.norm(n, axis=-1, keepdims=True) + 1e-12
    flip = np.sum(n * pts, axis=-1) > 0  # face the camera
    n[flip] *= -1
    return n.astype(np.float32)


def _consistent_points(
    views: list[_View], i: int, cfg: DenseConfig
) -> tuple[NDArray[np.float64], NDArray[np.uint8], NDArray[np.float64]]:
    ref = views[i]
    assert ref.depth is not None and ref.normal is not None  # noqa: S101  # set by _depth_map
    mask = ref.depth > 0
    pts_cam = _backproject(ref.depth, np.linalg.inv(ref.K))[mask].astype(np.float64)
    world = (pts_cam - ref.t) @ ref.R
    votes = np.zeros(len(world), np.int32)
    for j in ref.neighbours:
        nb = views[j]
        if nb.depth is None:
            continue
        pc = world @ nb.R.T + nb.t
        z = pc[:, 2]
        uv = pc @ nb.K.T
        u = np.rint(uv[:, 0] / np.maximum(z, 1e-9)).astype(np.int64)
        v = np.rint(uv[:, 1] / np.maximum(z, 1e-9)).astype(np.int64)
        h, w = nb.depth.shape
        inside = (z > 0) & (u >= 0) & (u < w) & (v >= 0) & (v < h)
        dz = np.zeros(len(z))
        dz[inside] = nb.depth[v[inside], u[inside]]
        votes += inside & (dz > 0) & (np.abs(dz - z) < cfg.depth_tolerance * z)
    need = min(cfg.min_consistent, len(ref.neighbours))
    good = votes >= need
    normals = ref.normal[mask][good].astype(np.float64) @ ref.R  # camera -> world
    return world[good], ref.color[mask][good], normals


def _voxel_fuse(
    points: NDArray[np.float64], colors: NDArray[np.float64], normals: NDArray[np.float64], voxel: float
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    keys = np.floor((points - points.min(axis=0)) / voxel).astype(np.int64)
    _, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()

    def mean(values: NDArray[np.float64]) -> NDArray[np.float64]:
        out = np.zeros((len(counts), values.shape[1]))
        np.add.at(out, inverse, values)
        return out / counts[:, None]

    fused_n = mean(normals)
    fused_n /= np.linalg.norm(fused_n, axis=1, keepdims=True) + 1e-12
    return mean(points), mean(colors), fused_n


def densify(
    model: SparseModel,
    image_dir: Path,
    cfg: DenseConfig,
    *,
    threads: int | None,
    on_depth_map: Callable[[int, int], None],
) -> DenseCloud:
    """Depth map per registered photo, filtered and fused into one cloud."""
    neighbours, ranges = _select_neighbours(model, cfg.neighbours)
    workers = max(1, threads or 2)
    cv2.setNumThreads(1)  # parallelism comes from one view per worker thread
    with ThreadPoolExecutor(workers) as pool:
        views = list(pool.map(lambda i: _load_view(model, i, image_dir, cfg.max_size), range(len(model.cameras))))
    for view, nbs, rng in zip(views, neighbours, ranges, strict=True):
        view.neighbours, view.depth_range = nbs, rng
    todo = [i for i, v in enumerate(views) if v.neighbours]
    done = [0]

    def run(i: int) -> None:
        _depth_map(views, i, cfg)
        done[0] += 1
        on_depth_map(done[0], len(todo))

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(run, todo))
    parts = [_consistent_points(views, i, cfg) for i in todo]
    points = np.concatenate([p[0] for p in parts]) if parts else np.zeros((0, 3))
    colors = np.concatenate([p[1] for p in parts]).astype(np.float64) / 255.0 if parts else np.zeros((0, 3))
    normals = np.concatenate([p[2] for p in parts]) if parts else np.zeros((0, 3))
    if len(points) == 0:
        return DenseCloud(points, colors, normals, len(todo))
    lo, hi = np.percentile(model.points, [1, 99], axis=0)
    voxel = float(np.linalg.norm(hi - lo)) / (1.2 * cfg.max_size)
    points, colors, normals = _voxel_fuse(points, colors, normals, voxel)
    return DenseCloud(points, colors, normals, len(todo))
