"""Texture: UV atlas, then every texel coloured from the photos that see it.

Each texel's surface point is projected into the photos whose view of its
face is unoccluded (one Embree ray per face and photo); colours are blended
with weights favouring head-on views, which hides seams between photos.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from projects.pipeline import engine
from projects.pipeline.engine import SparseModel
from projects.pipeline.steps.atlas import build_atlas, rasterize
from projects.pipeline.steps.common import load_photo
from projects.pipeline.steps.mesh import Mesh
from projects.pipeline.steps.sparse import spread_cameras
from projects.pipeline.types import CountCallback, ignore_count

MAX_TEXTURE_PHOTOS = 36
BLEND_PHOTOS = 3


@dataclass(frozen=True, slots=True)
class TexturedMesh:
    vertices: NDArray[np.float64]
    faces: NDArray[np.int64]
    uvs: NDArray[
        np.float64
    ]  # per vertex in [0, 1], origin at the image's top-left (glTF)
    texture: NDArray[np.uint8]  # H x W x 3 RGB
    coverage: float  # share of texels that some photo saw


def _exposure_gains(
    samples: list[tuple[NDArray[np.intp], NDArray[np.float32], NDArray[np.float32]]],
    count: int,
) -> NDArray[np.float32]:
    """Per-photo RGB gains that bring each photo to the consensus of the others.

    Auto-exposure and white balance differ from photo to photo; blended as they
    are, they leave blotches where one photo takes over from another. Each gain
    is the median ratio between the blended colour and the photo's own on the
    texels it shares with other photos (robust to occlusions and highlights).
    """
    gains = np.ones((len(samples), 3), np.float32)
    for _ in range(2):
        colour_sum = np.zeros((count, 3), np.float32)
        weight_sum = np.zeros(count, np.float32)
        seen_by = np.zeros(count, np.int32)
        for (idx, colours, weight), gain in zip(samples, gains, strict=True):
            colour_sum[idx] += colours * gain * weight[:, None]
            weight_sum[idx] += weight
            seen_by[idx] += 1
        mean = colour_sum / np.maximum(weight_sum, 1e-9)[:, None]
        for k, (idx, colours, _) in enumerate(samples):
            shared = (seen_by[idx] > 1) & (colours.min(axis=1) > 8)
            if shared.sum() < 200:
                continue
            ratio = mean[idx[shared]] / colours[shared]
            gains[k] = np.clip(np.median(ratio, axis=0), 0.5, 2.0)
        gains /= np.median(gains, axis=0)  # keep the set's overall exposure
    return gains


def _load(
    model: SparseModel, index: int, image_dir: Path, max_size: int
) -> tuple[NDArray[np.uint8], NDArray[np.float64]]:
    small, K = load_photo(model.cameras[index], image_dir, max_size)
    return cv2.cvtColor(small, cv2.COLOR_BGR2RGB), K


def _fill_gutters(
    texture: NDArray[np.uint8], filled: NDArray[np.bool_], iterations: int = 6
) -> NDArray[np.uint8]:
    """Grow chart borders into empty texels so mip-mapping does not bleed seams."""
    out = texture.copy()
    empty = ~filled
    for _ in range(iterations):
        if not empty.any():
            break
        weight = cv2.blur((~empty).astype(np.float32), (3, 3))
        grown = cv2.blur(out.astype(np.float32) * (~empty)[..., None], (3, 3))
        take = empty & (weight > 0)
        out[take] = (grown[take] / weight[take, None]).astype(np.uint8)
        empty &= ~take
    return out


def _sample(
    image: NDArray[np.uint8], u: NDArray[np.float32], v: NDArray[np.float32]
) -> NDArray[np.float32]:
    """Bilinear colours at (u, v); cv2.remap wants maps under 32767 rows, so fold
    them."""
    n = len(u)
    width = 1024
    rows = -(-n // width)
    pad = rows * width - n
    mu = np.pad(u, (0, pad)).reshape(rows, width)
    mv = np.pad(v, (0, pad)).reshape(rows, width)
    out = cv2.remap(image, mu, mv, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(-1, 3)[:n].astype(np.float32)


def texture_mesh(
    mesh: Mesh,
    model: SparseModel,
    image_dir: Path,
    *,
    texture_size: int,
    photo_size: int,
    on_rays: CountCallback = ignore_count,
    on_photo: CountCallback = ignore_count,
) -> TexturedMesh:
    """UV-unwrap ``mesh`` and blend the registered photos into one texture."""
    atlas = build_atlas(mesh.vertices, mesh.faces, texture_size)
    texels, face_ids, bary = rasterize(atlas)
    points = np.einsum("tk,tkd->td", bary, atlas.vertices[atlas.faces[face_ids]])
    tri = atlas.vertices[atlas.faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12
    chosen = spread_cameras(model, MAX_TEXTURE_PHOTOS)
    centres = [model.cameras[i].centre for i in chosen]
    visibility = engine.visible_faces(atlas.vertices, atlas.faces, centres, on_rays)
    centroids = tri.mean(axis=1)
    # Score every (face, photo); each face blends only its best few photos,
    # so every texel is sampled a handful of times instead of once per photo.
    score = np.zeros((len(centroids), len(chosen)), np.float32)
    for k, (centre, visible) in enumerate(zip(centres, visibility, strict=True)):
        view = centre - centroids
        cos = np.einsum("fd,fd->f", normals, view) / np.linalg.norm(view, axis=1)
        score[:, k] = np.where(visible & (cos > 0.15), cos, 0.0) ** 4
    best = min(BLEND_PHOTOS, len(chosen))
    top = np.argpartition(-score, best - 1, axis=1)[:, :best]
    keep = np.zeros_like(score, dtype=bool)
    np.put_along_axis(keep, top, True, axis=1)
    score *= keep
    samples = []
    for k, index in enumerate(chosen):
        on_photo(k, len(chosen))
        use = score[face_ids, k] > 0
        if not use.any():
            continue
        image, K = _load(model, index, image_dir, photo_size)
        cam = model.cameras[index]
        uv = (points[use] @ cam.R.T + cam.t) @ K.T
        u = (uv[:, 0] / uv[:, 2]).astype(np.float32)
        v = (uv[:, 1] / uv[:, 2]).astype(np.float32)
        h, w = image.shape[:2]
        inside = (u >= 0) & (u <= w - 1) & (v >= 0) & (v <= h - 1)
        weight = score[face_ids[use], k] * inside
        samples.append((np.flatnonzero(use), _sample(image, u, v), weight))
    on_photo(len(chosen), len(chosen))
    gains = _exposure_gains(samples, len(points))
    colour_sum = np.zeros((len(points), 3), np.float32)
    weight_sum = np.zeros(len(points), np.float32)
    for (idx, colours, weight), gain in zip(samples, gains, strict=True):
        colour_sum[idx] += colours * gain * weight[:, None]
        weight_sum[idx] += weight
    seen = weight_sum > 0
    texture = np.zeros((texture_size, texture_size, 3), np.uint8)
    filled = np.zeros((texture_size, texture_size), bool)
    rows, cols = texels[seen, 0], texels[seen, 1]
    texture[rows, cols] = np.clip(
        colour_sum[seen] / weight_sum[seen, None], 0, 255
    ).astype(np.uint8)
    filled[rows, cols] = True
    # Texels no photo saw take the mean colour rather than black.
    unseen = texels[~seen]
    if len(unseen) and seen.any():
        texture[unseen[:, 0], unseen[:, 1]] = (
            texture[rows, cols].mean(axis=0).astype(np.uint8)
        )
        filled[unseen[:, 0], unseen[:, 1]] = True
    uvs = atlas.uv_pixels / texture_size
    coverage = float(seen.mean()) if len(seen) else 0.0
    return TexturedMesh(
        atlas.vertices, atlas.faces, uvs, _fill_gutters(texture, filled), coverage
    )
