"""Dense points on the CPU: coarse-to-fine plane sweep, consistency filtering, fusion.

COLMAP's PatchMatch needs CUDA, so on CPU every registered photo gets a depth
map in two passes. First, fronto-parallel planes are swept at half resolution
through the depth range its sparse points span, each scored by the normalised
cross-correlation (NCC) with its neighbours (the best half, so an occluded
neighbour does not veto a depth). Then, at full resolution, a few per-pixel
depth hypotheses around that coarse depth are scored the same way (cv2.remap)
and the minimum is refined by a parabola. Against one full-resolution sweep
this costs about a third and resolves depth about three times finer.
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
from projects.pipeline.steps.common import load_photo, robust_diagonal
from projects.pipeline.steps.sparse import spread_cameras
from projects.pipeline.types import ignore_count

F32 = NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class DenseConfig:
    max_size: int
    planes: int
    neighbours: int
    window: int = 7
    min_ncc: float = 0.3  # 0.55 lost the grazing base of the object (benchmarks/)
    min_texture: float = (
        0.012  # local std-dev of grey (0..1) below which a pixel is blank
    )
    depth_tolerance: float = 0.015  # relative, for geometric consistency
    min_consistent: int = 2
    # Coarse-to-fine: sweep ``planes`` at this share of the resolution, then
    # search ``refine_steps`` each side of that depth at full resolution,
    # ``refine_span`` coarse plane steps wide. 1.0 = one full-resolution sweep.
    max_views: int = 0  # depth maps for at most this many photos; 0 = all
    coarse_scale: float = 0.5
    refine_steps: int = 4
    refine_span: float = 1.5


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
    checks: list[int] | None = None  # depth maps to agree with; None = neighbours


@dataclass(frozen=True, slots=True)
class DenseCloud:
    points: NDArray[np.float64]
    colors: NDArray[np.float64]  # 0..1
    normals: NDArray[np.float64]
    depth_maps: int


def _load_view(model: SparseModel, index: int, image_dir: Path, max_size: int) -> _View:
    cam = model.cameras[index]
    small, K = load_photo(cam, image_dir, max_size)
    rgb = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
    gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.float32) / 255.0
    return _View(gray, rgb, K, cam.R, cam.t, (0.0, 0.0), [])


def _select_neighbours(
    model: SparseModel, count: int, allowed: NDArray[np.bool_] | None = None
) -> tuple[list[list[int]], list[tuple[float, float]]]:
    """Neighbours (among ``allowed``) sharing many sparse points at a useful angle."""
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
        anchor = (
            model.points[seen].mean(axis=0) if seen.any() else model.points.mean(axis=0)
        )
        a = centres - anchor
        a /= np.linalg.norm(a, axis=1, keepdims=True)
        angle = np.degrees(np.arccos(np.clip(a @ a[i], -1, 1)))
        # Prefer 10-25 degrees: enough baseline for depth, little appearance change.
        weight = (
            np.exp(-((np.clip(angle, 0, 60) - 17.0) ** 2) / (2 * 10.0**2))
            * (angle > 3)
            * (angle < 50)
        )
        score = shared[i] * weight
        score[i] = 0
        if allowed is not None:
            score[~allowed] = 0
        order = [int(j) for j in np.argsort(-score) if score[j] > 0][:count]
        neighbours.append(order)
        pts = model.points[seen] if seen.sum() >= 10 else model.points
        z = (pts @ cam.R.T + cam.t)[:, 2]
        z = z[z > 0]
        lo, hi = np.percentile(z, [1, 99]) if len(z) else (0.1, 10.0)
        ranges.append((float(lo) * 0.85, float(hi) * 1.15))
    return neighbours, ranges


def _box(img: F32, k: int) -> F32:
    return cv2.blur(img, (k, k), borderType=cv2.BORDER_REFLECT)


class _TopMean:
    """Running mean of the ``keep`` best scores per pixel (no sort of a score stack)."""

    def __init__(self, keep: int, shape: tuple[int, int]) -> None:
        self.top = [np.full(shape, -1.0, np.float32) for _ in range(keep)]

    def add(self, score: F32) -> None:
        cur = score
        for i, best in enumerate(self.top):
            self.top[i] = np.maximum(best, cur)
            cur = np.minimum(best, cur)

    def mean(self) -> F32:
        return sum(self.top[1:], self.top[0]) / np.float32(len(self.top))


def _ncc(ref: F32, mu_r: F32, var_r: F32, warped: F32, k: int) -> F32:
    """Windowed NCC of ``warped`` against the reference (its stats precomputed)."""
    stats = cv2.blur(
        cv2.merge([warped, warped * warped, ref * warped]),
        (k, k),
        borderType=cv2.BORDER_REFLECT,
    )
    mu_w = stats[..., 0]
    var_w = np.maximum(stats[..., 1] - mu_w * mu_w, 0)
    cov = stats[..., 2] - mu_r * mu_w
    return cov / np.sqrt(var_r * var_w + 1e-6)


_Pose = tuple[_View, NDArray[np.float64], NDArray[np.float64]]


def _relative(views: list[_View], ref: _View) -> list[_Pose]:
    """Each neighbour with its rotation and translation from ``ref``'s camera."""
    out = []
    for j in ref.neighbours:
        nb = views[j]
        r_ji = nb.R @ ref.R.T
        out.append((nb, r_ji, nb.t - r_ji @ ref.t))
    return out


def _level(
    gray: F32, scale: float, intrinsics: NDArray[np.float64]
) -> tuple[F32, NDArray[np.float64]]:
    """``gray`` resized by ``scale`` and its intrinsics (pixel-centre convention)."""
    if scale == 1.0:
        return gray, intrinsics
    h, w = gray.shape
    size = (max(8, round(w * scale)), max(8, round(h * scale)))
    sx, sy = size[0] / w, size[1] / h
    small = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    k = intrinsics
    scaled = np.array(
        [
            [k[0, 0] * sx, 0, (k[0, 2] + 0.5) * sx - 0.5],
            [0, k[1, 1] * sy, (k[1, 2] + 0.5) * sy - 0.5],
            [0, 0, 1],
        ]
    )
    return small, scaled


def _parabola(cost: F32, best: NDArray[np.intp]) -> tuple[F32, F32]:
    """Sub-step offset of the cost minimum in [-0.5, 0.5], and the minimum cost."""
    n = cost.shape[0]
    rows, cols = np.indices(best.shape)
    c1 = cost[best, rows, cols]
    inner = np.clip(best, 1, n - 2)
    c0, c2 = cost[inner - 1, rows, cols], cost[inner + 1, rows, cols]
    denom = c0 - 2 * c1 + c2
    offset = np.where(denom > 1e-6, 0.5 * (c0 - c2) / np.maximum(denom, 1e-6), 0.0)
    return np.clip(offset, -0.5, 0.5).astype(np.float32), c1


def _sweep(
    views: list[_View], ref: _View, cfg: DenseConfig, scale: float
) -> tuple[F32, F32, float]:
    """Plane sweep at ``scale``: inverse depth per pixel, its cost, the plane step."""
    gray, k_ref = _level(ref.gray, scale, ref.K)
    h, w = gray.shape
    k = cfg.window if scale == 1.0 else max(5, round(cfg.window * scale) | 1)
    mu_r = _box(gray, k)
    var_r = np.maximum(_box(gray * gray, k) - mu_r * mu_r, 0)
    inv_k = np.linalg.inv(k_ref)
    lo, hi = ref.depth_range
    inv_depths = np.linspace(1.0 / lo, 1.0 / hi, cfg.planes)
    rel = []
    for nb, r_ji, t_ji in _relative(views, ref):
        g, k_nb = _level(nb.gray, scale, nb.K)
        rel.append((g, k_nb, r_ji, t_ji))
    keep = max(1, math.ceil(len(rel) / 2))
    cost = np.empty((cfg.planes, h, w), np.float32)
    normal = np.array([[0.0, 0.0, 1.0]])
    for d, inv_d in enumerate(inv_depths):
        top = _TopMean(keep, (h, w))
        for g, k_nb, r_ji, t_ji in rel:
            hom = k_nb @ (r_ji + t_ji[:, None] @ normal * inv_d) @ inv_k
            warped = cv2.warpPerspective(
                g,
                hom,
                (w, h),
                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                # NaN would poison cv2.blur's running sums; 0 just scores low.
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=0.0,
            )
            top.add(_ncc(gray, mu_r, var_r, warped, k))
        cost[d] = 1.0 - top.mean()
    best = np.argmin(cost, axis=0)
    offset, c1 = _parabola(cost, best)
    step = float(inv_depths[1] - inv_depths[0])
    inv = (inv_depths[best] + offset * step).astype(np.float32)
    # Pixels whose best plane is at the ends of the range lie outside it.
    inv[(best == 0) | (best == cfg.planes - 1)] = 0.0
    return inv, c1, step


def _refine(
    views: list[_View], ref: _View, cfg: DenseConfig, inv0: F32, step: float
) -> tuple[F32, F32]:
    """Full-resolution search around ``inv0``: per-pixel depth hypotheses via remap."""
    h, w = ref.gray.shape
    k = cfg.window
    mu_r = _box(ref.gray, k)
    var_r = np.maximum(_box(ref.gray * ref.gray, k) - mu_r * mu_r, 0)
    inv_k = np.linalg.inv(ref.K)
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    pix = np.stack([u, v, np.ones_like(u)], -1)
    rel = []
    for nb, r_ji, t_ji in _relative(views, ref):
        a = (pix @ (nb.K @ r_ji @ inv_k).T).astype(np.float32)
        b = (nb.K @ t_ji).astype(np.float32)
        rel.append((nb.gray, a[..., 0], a[..., 1], a[..., 2], b))
    keep = max(1, math.ceil(len(rel) / 2))
    hyps = cfg.refine_steps
    delta = np.float32(step * cfg.refine_span / hyps)
    cost = np.empty((2 * hyps + 1, h, w), np.float32)
    for n, s in enumerate(range(-hyps, hyps + 1)):
        inv = inv0 + np.float32(s) * delta
        top = _TopMean(keep, (h, w))
        for g, a0, a1, a2, b in rel:
            z = a2 + inv * b[2]
            bad = z <= 1e-6
            z = np.where(bad, 1.0, z)
            mx = (a0 + inv * b[0]) / z
            my = (a1 + inv * b[1]) / z
            mx[bad] = -1e4
            warped = cv2.remap(
                g,
                mx,
                my,
                cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=0.0,
            )
            top.add(_ncc(ref.gray, mu_r, var_r, warped, k))
        cost[n] = 1.0 - top.mean()
    best = np.argmin(cost, axis=0)
    offset, c1 = _parabola(cost, best)
    inv = inv0 + ((best - hyps).astype(np.float32) + offset) * delta
    # At the ends of the search window the coarse guess was off: not trusted.
    inv[(best == 0) | (best == 2 * hyps)] = 0.0
    return inv, c1


def _depth_map(views: list[_View], i: int, cfg: DenseConfig) -> None:
    ref = views[i]
    h, w = ref.gray.shape
    k = cfg.window
    mu_r = _box(ref.gray, k)
    var_r = np.maximum(_box(ref.gray * ref.gray, k) - mu_r * mu_r, 0)
    if cfg.coarse_scale < 1.0:
        inv_c, _, step = _sweep(views, ref, cfg, cfg.coarse_scale)
        inv0 = cv2.resize(inv_c, (w, h), interpolation=cv2.INTER_NEAREST)
        unknown = inv0 <= 0
        inv0[unknown] = 1.0 / ref.depth_range[1]
        inv, c1 = _refine(views, ref, cfg, inv0, step)
        inv[unknown] = 0.0
    else:
        inv, c1, _ = _sweep(views, ref, cfg, 1.0)
    valid = (1.0 - c1 > cfg.min_ncc) & (np.sqrt(var_r) > cfg.min_texture) & (inv > 0)
    valid &= ~_still(views, ref, mu_r, var_r, k)
    depth = np.where(valid, 1.0 / np.maximum(inv, 1e-9), 0.0).astype(np.float32)
    ref.depth = depth
    ref.normal = _normals_from_depth(depth, np.linalg.inv(ref.K))


def _still(
    views: list[_View], ref: _View, mu_r: F32, var_r: F32, k: int
) -> NDArray[np.bool_]:
    """Pixels that look the same at the same place in most neighbouring photos.

    On a rig the camera and its backdrop stay still while the object turns: the
    backdrop is photo-consistent with itself at a phantom depth near the turning
    axis, so it is masked here rather than fused into a wall around the object.
    A moving camera never sees textured surfaces at the same pixel twice.
    """
    same = [
        views[j].gray for j in ref.neighbours if views[j].gray.shape == ref.gray.shape
    ]
    if not same:
        return np.zeros(ref.gray.shape, bool)
    votes = sum(
        (_ncc(ref.gray, mu_r, var_r, g, k) > 0.9).astype(np.int32) for g in same
    )
    return votes * 2 >= len(same)


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
    assert ref.depth is not None  # noqa: S101  # set by _depth_map
    assert ref.normal is not None  # noqa: S101
    mask = ref.depth > 0
    pts_cam = _backproject(ref.depth, np.linalg.inv(ref.K))[mask].astype(np.float64)
    world = (pts_cam - ref.t) @ ref.R
    votes = np.zeros(len(world), np.int32)
    checks = ref.neighbours if ref.checks is None else ref.checks
    for j in checks:
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
    need = min(cfg.min_consistent, len(checks))
    good = votes >= need
    normals = ref.normal[mask][good].astype(np.float64) @ ref.R  # camera -> world
    return world[good], ref.color[mask][good], normals


def _voxel_fuse(
    points: NDArray[np.float64],
    colors: NDArray[np.float64],
    normals: NDArray[np.float64],
    voxel: float,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    cells = np.floor((points - points.min(axis=0)) / voxel).astype(np.int64)
    span = cells.max(axis=0) + 1
    keys = (cells[:, 0] * span[1] + cells[:, 1]) * span[2] + cells[:, 2]
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)

    def mean(values: NDArray[np.float64]) -> NDArray[np.float64]:
        sums = [
            np.bincount(inverse, weights=values[:, c], minlength=len(counts))
            for c in range(values.shape[1])
        ]
        return np.stack(sums, axis=1) / counts[:, None]

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
    on_fused: Callable[[int, int], None] = ignore_count,
) -> DenseCloud:
    """Depth map per registered photo, filtered and fused into one cloud."""
    neighbours, ranges = _select_neighbours(model, cfg.neighbours)
    workers = max(1, threads or 2)
    cv2.setNumThreads(1)  # parallelism comes from one view per worker thread
    with ThreadPoolExecutor(workers) as pool:
        views = list(
            pool.map(
                lambda i: _load_view(model, i, image_dir, cfg.max_size),
                range(len(model.cameras)),
            )
        )
    for view, nbs, rng in zip(views, neighbours, ranges, strict=True):
        view.neighbours, view.depth_range = nbs, rng
    todo = [i for i, v in enumerate(views) if v.neighbours]
    if 0 < cfg.max_views < len(todo):
        # Large sets: depth maps for views spread around the object only;
        # every photo still serves as a neighbour for photo-consistency.
        todo = spread_cameras(model, cfg.max_views, among=todo)
        allowed = np.zeros(len(views), bool)
        allowed[todo] = True
        checks, _ = _select_neighbours(model, cfg.neighbours, allowed)
        for i in todo:
            views[i].checks = checks[i]
    done = [0]

    def run(i: int) -> None:
        _depth_map(views, i, cfg)
        done[0] += 1
        on_depth_map(done[0], len(todo))

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(run, todo))
    parts = []
    for k, i in enumerate(todo, 1):
        parts.append(_consistent_points(views, i, cfg))
        on_fused(k, len(todo))
    points = np.concatenate([p[0] for p in parts]) if parts else np.zeros((0, 3))
    colors = (
        np.concatenate([p[1] for p in parts]).astype(np.float64) / 255.0
        if parts
        else np.zeros((0, 3))
    )
    normals = np.concatenate([p[2] for p in parts]) if parts else np.zeros((0, 3))
    if len(points) == 0:
        return DenseCloud(points, colors, normals, len(todo))
    voxel = robust_diagonal(model.points) / (1.2 * cfg.max_size)
    points, colors, normals = _voxel_fuse(points, colors, normals, voxel)
    return DenseCloud(points, colors, normals, len(todo))
