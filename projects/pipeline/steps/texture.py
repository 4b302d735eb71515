"""Texture: a UV atlas for the mesh and an albedo image projected from the photos."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from projects.pipeline import engine
from projects.pipeline.engine import SparseModel
from projects.pipeline.steps.mesh import Mesh

MAX_TEXTURE_PHOTOS = 48


@dataclass(frozen=True, slots=True)
class TexturedMesh:
    vertices: NDArray[np.float64]
    faces: NDArray[np.int64]
    uvs: NDArray[np.float32]  # F x 3 x 2, origin at the image's top-left
    texture: NDArray[np.uint8]  # H x W x 3 RGB


def _photo_subset(model: SparseModel, limit: int) -> list[int]:
    """Evenly spread photos in capture order; blending more adds time, not detail."""
    n = len(model.cameras)
    if n <= limit:
        return list(range(n))
    return sorted({round(i * n / limit) for i in range(limit)})


def _load(model: SparseModel, index: int, image_dir: Path, max_size: int) -> tuple[NDArray[np.uint8], NDArray[np.float64]]:
    cam = model.cameras[index]
    bgr = cv2.imread(str(image_dir / cam.name), cv2.IMREAD_COLOR)
    scale = min(1.0, max_size / max(cam.width, cam.height))
    w, h = round(cam.width * scale), round(cam.height * scale)
    sx, sy = w / cam.width, h / cam.height
    small = cv2.resize(bgr, (w, h), interpolation=cv2.INTER_AREA)
    K = np.array(
        [[cam.K[0, 0] * sx, 0, cam.K[0, 2] * sx - 0.5], [0, cam.K[1, 1] * sy, cam.K[1, 2] * sy - 0.5], [0, 0, 1]]
    )
    if abs(cam.radial) > 1e-6:
        small = cv2.undistort(small, K, np.array([cam.radial, 0, 0, 0]))
    return cv2.cvtColor(small, cv2.COLOR_BGR2RGB), K


def _fill_gutters(texture: NDArray[np.uint8], iterations: int = 8) -> NDArray[np.uint8]:
    """Grow chart borders into empty texels so filtering does not bleed black seams."""
    empty = np.all(texture == 0, axis=2)
    out = texture.copy()
    kernel = np.ones((3, 3), np.uint8)
    for _ in range(iterations):
        if not empty.any():
            break
        grown = cv2.dilate(out, kernel)
        out[empty] = grown[empty]
        empty = np.all(out == 0, axis=2)
    return out


def texture_mesh(
    mesh: Mesh,
    model: SparseModel,
    image_dir: Path,
    *,
    texture_size: int,
    photo_size: int,
    threads: int | None,
) -> TexturedMesh:
    """UV-unwrap ``mesh`` and blend the registered photos into one texture."""
    uvs = engine.uv_atlas(mesh.vertices, mesh.faces, texture_size, threads)
    images, intrinsics, extrinsics = [], [], []
    for i in _photo_subset(model, MAX_TEXTURE_PHOTOS):
        image, K = _load(model, i, image_dir, photo_size)
        extrinsic = np.eye(4)
        extrinsic[:3, :3], extrinsic[:3, 3] = model.cameras[i].R, model.cameras[i].t
        images.append(image)
        intrinsics.append(K)
        extrinsics.append(extrinsic)
    albedo = engine.project_albedo(
        mesh.vertices, mesh.faces, uvs, images, intrinsics, extrinsics, texture_size
    )
    return TexturedMesh(mesh.vertices, mesh.faces, uvs, _fill_gutters(albedo[..., :3]))
