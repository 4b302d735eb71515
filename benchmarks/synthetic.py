"""Synthetic turntable image sets with known geometry, rendered on the CPU.

A lumpy, solid-textured "statuette" stands on the origin (z up). Cameras sit on
rings (azimuths x elevations) like an OpenScan rig and look at the object's
middle. Each view is ray cast with Open3D's Embree scene, shaded with a fixed
world light (Lambertian, so photo-consistency holds between views) and saved as a
JPEG carrying EXIF focal length, 35 mm equivalent, make and model.

Written next to the images: ``ground_truth.ply`` (the object only, not the
turntable) and ``cameras_gt.json`` (COLMAP convention: x_cam = R x_world + t).

Usage: ``python -m benchmarks.synthetic OUT_DIR --views 48 --size 1024x768``.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import open3d as o3d
import trimesh
from numpy.typing import NDArray
from PIL import Image
from scipy import ndimage

SENSOR_WIDTH_MM = 6.17  # a 1/2.3" phone sensor; only used for the EXIF FocalLength
_DIAGONAL_35MM = 43.27
_EXIF_IFD = 0x8769
_TAG_MAKE, _TAG_MODEL, _TAG_ORIENTATION = 0x010F, 0x0110, 0x0112
_TAG_FOCAL, _TAG_FOCAL_35 = 0x920A, 0xA405


@dataclass(frozen=True, slots=True)
class TurntableSpec:
    views: int = 48
    width: int = 1024
    height: int = 768
    rings: int = 3
    elevations_deg: tuple[float, ...] = (10.0, 30.0, 50.0)
    distance: float = 2.6
    fov_deg: float = 40.0
    turntable: bool = True
    seed: int = 7
    supersample: int = 2
    jpeg_quality: int = 92

    @property
    def per_ring(self) -> int:
        return self.views // self.rings


def spec_for(views: int, width: int, height: int, **kwargs: object) -> TurntableSpec:
    """Pick ring layout for a view count: 3 rings, or 2 for tiny sets."""
    rings = 3 if views >= 36 else 2
    elevations = (10.0, 30.0, 50.0) if rings == 3 else (15.0, 40.0)
    return TurntableSpec(
        views=views,
        width=width,
        height=height,
        rings=rings,
        elevations_deg=elevations,
        **kwargs,  # type: ignore[arg-type]  # forwarded dataclass fields
    )


def statuette_mesh(seed: int = 7) -> trimesh.Trimesh:
    """A closed, lumpy, upright object about 1 unit tall with a dent and bumps."""
    rng = np.random.default_rng(seed)
    sphere = trimesh.creation.icosphere(subdivisions=6)
    v = sphere.vertices.copy()
    d = v / np.linalg.norm(v, axis=1, keepdims=True)
    radius = np.ones(len(v))
    for _ in range(9):  # bumps and dents of several sizes
        centre = rng.normal(size=3)
        centre /= np.linalg.norm(centre)
        width = rng.uniform(0.25, 0.6)
        height = rng.uniform(-0.18, 0.25)
        radius += height * np.exp(-np.sum((d - centre) ** 2, axis=1) / width**2)
    # A waist makes the silhouette non-convex, like a statuette's neck.
    radius *= 1.0 - 0.25 * np.exp(-((d[:, 2] - 0.35) ** 2) / 0.03)
    v = d * radius[:, None] * np.array([0.33, 0.3, 0.5])
    v[:, 2] -= v[:, 2].min()
    return trimesh.Trimesh(vertices=v, faces=sphere.faces, process=False)


class _SolidTexture:
    """Colour as a function of 3D position (view-consistent, seam-free)."""

    def __init__(self, seed: int, lo: NDArray[np.float64], hi: NDArray[np.float64]):
        rng = np.random.default_rng(seed)
        self.lo, self.span = lo, np.maximum(hi - lo, 1e-9)
        self.octaves = [
            (rng.random((n, n, n, 3)).astype(np.float32), n, w)
            for n, w in ((8, 0.45), (24, 0.35), (72, 0.35), (160, 0.2))
        ]

    def __call__(self, points: NDArray[np.float64]) -> NDArray[np.float32]:
        unit = (points - self.lo) / self.span
        out = np.zeros((len(points), 3), np.float32)
        for grid, n, weight in self.octaves:
            coords = np.clip(unit * (n - 1), 0, n - 1).T
            for c in range(3):
                out[:, c] += weight * ndimage.map_coordinates(
                    grid[..., c], coords, order=1, mode="nearest"
                )
        out = (out - out.mean(axis=0)) * 2.2 + 0.5  # boost contrast for features
        return np.clip(out, 0.03, 1.0)


def camera_poses(spec: TurntableSpec, target: NDArray[np.float64]) -> list[dict]:
    """World-to-camera poses on rings, in capture order (ring by ring)."""
    poses = []
    for ring, elevation in enumerate(spec.elevations_deg[: spec.rings]):
        for k in range(spec.per_ring):
            az = 2 * math.pi * k / spec.per_ring + ring * 0.3
            el = math.radians(elevation)
            offset = np.array(
                [math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)]
            )
            centre = target + spec.distance * offset
            forward = (target - centre) / np.linalg.norm(target - centre)
            right = np.cross(forward, [0.0, 0.0, 1.0])
            right /= np.linalg.norm(right)
            down = np.cross(forward, right)
            rot = np.stack([right, down, forward])
            poses.append({"R": rot, "t": -rot @ centre, "centre": centre})
    return poses


def _render(
    scene: o3d.t.geometry.RaycastingScene,
    texture: list[_SolidTexture],
    pose: dict,
    focal: float,
    spec: TurntableSpec,
) -> NDArray[np.uint8]:
    s = spec.supersample
    w, h = spec.width * s, spec.height * s
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    dirs = np.stack(
        [(u - w / 2) / (focal * s), (v - h / 2) / (focal * s), np.ones_like(u)], -1
    )
    dirs = dirs.reshape(-1, 3) @ pose["R"]  # R^T applied to row vectors
    origins = np.broadcast_to(pose["centre"], dirs.shape)
    rays = np.concatenate([origins, dirs], axis=1).astype(np.float32)
    hit = scene.cast_rays(o3d.core.Tensor(rays))
    t = hit["t_hit"].numpy()
    geom = hit["geometry_ids"].numpy()
    normals = hit["primitive_normals"].numpy()
    ok = np.isfinite(t)
    # A soft vertical gradient stands in for a studio backdrop.
    img = (
        np.repeat(np.linspace(0.22, 0.3, h)[:, None], w, 1)
        .reshape(-1)[:, None]
        .repeat(3, 1)
    )
    points = origins[ok] + dirs[ok] * t[ok, None]
    light = np.array([0.4, -0.3, 0.86])
    light /= np.linalg.norm(light)
    n = normals[ok]
    n *= np.sign(-np.sum(n * dirs[ok], axis=1, keepdims=True))  # face the viewer
    shade = 0.45 + 0.55 * np.clip(n @ light, 0, 1)
    colour = np.zeros((ok.sum(), 3), np.float32)
    for gid, tex in enumerate(texture):
        sel = geom[ok] == gid
        colour[sel] = tex(points[sel])
    img[ok] = colour * shade[:, None]
    img = img.reshape(h, w, 3)
    if s > 1:
        img = img.reshape(spec.height, s, spec.width, s, 3).mean(axis=(1, 3))
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def _exif(focal_px: float, width: int, height: int) -> Image.Exif:
    exif = Image.Exif()
    exif[_TAG_MAKE] = "OpenScan"
    exif[_TAG_MODEL] = "Synthetic Mini"
    exif[_TAG_ORIENTATION] = 1
    ifd = exif.get_ifd(_EXIF_IFD)
    ifd[_TAG_FOCAL] = round(focal_px * SENSOR_WIDTH_MM / width, 3)
    ifd[_TAG_FOCAL_35] = round(focal_px * _DIAGONAL_35MM / math.hypot(width, height))
    return exif


def generate(out_dir: Path, spec: TurntableSpec) -> Path:
    """Render ``spec`` into ``out_dir`` (reused when already complete); return out_dir."""
    out_dir = Path(out_dir)
    marker = out_dir / "cameras_gt.json"
    if marker.exists() and json.loads(marker.read_text()).get("spec") == _spec_dict(
        spec
    ):
        return out_dir
    images = out_dir / "images"
    images.mkdir(parents=True, exist_ok=True)
    mesh = statuette_mesh(spec.seed)
    mesh.export(out_dir / "ground_truth.ply")
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(mesh.vertices.astype(np.float32)),
        o3d.core.Tensor(mesh.faces.astype(np.uint32)),
    )
    lo, hi = mesh.bounds
    textures = [_SolidTexture(spec.seed, lo, hi)]
    if spec.turntable:
        disc = trimesh.creation.cylinder(radius=0.75, height=0.04, sections=96)
        disc.apply_translation([0, 0, -0.0201])
        scene.add_triangles(
            o3d.core.Tensor(disc.vertices.astype(np.float32)),
            o3d.core.Tensor(disc.faces.astype(np.uint32)),
        )
        textures.append(_SolidTexture(spec.seed + 1, disc.bounds[0], disc.bounds[1]))
    target = np.array([0.0, 0.0, (hi[2] - lo[2]) * 0.45])
    focal = 0.5 * spec.width / math.tan(math.radians(spec.fov_deg) / 2)
    cameras = []
    for i, pose in enumerate(camera_poses(spec, target)):
        name = f"IMG_{i:04d}.jpg"
        pixels = _render(scene, textures, pose, focal, spec)
        Image.fromarray(pixels).save(
            images / name,
            quality=spec.jpeg_quality,
            exif=_exif(focal, spec.width, spec.height),
        )
        cameras.append(
            {
                "name": name,
                "R": pose["R"].tolist(),
                "t": pose["t"].tolist(),
                "centre": pose["centre"].tolist(),
                "K": [
                    [focal, 0, spec.width / 2],
                    [0, focal, spec.height / 2],
                    [0, 0, 1],
                ],
                "width": spec.width,
                "height": spec.height,
            }
        )
    marker.write_text(
        json.dumps({"spec": _spec_dict(spec), "cameras": cameras}, indent=1)
    )
    return out_dir


def _spec_dict(spec: TurntableSpec) -> dict:
    return {k: getattr(spec, k) for k in spec.__dataclass_fields__} | {
        "elevations_deg": list(spec.elevations_deg)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--views", type=int, default=48)
    parser.add_argument("--size", default="1024x768")
    parser.add_argument("--no-turntable", action="store_true")
    args = parser.parse_args()
    width, height = (int(x) for x in args.size.split("x"))
    spec = spec_for(args.views, width, height, turntable=not args.no_turntable)
    print(generate(args.out_dir, spec))


if __name__ == "__main__":
    main()
