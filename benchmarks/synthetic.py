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
DSLR_SENSOR_WIDTH_MM = 22.3  # Canon APS-C
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
    # The kinds of capture real users send, beyond ring-ordered rings:
    path: str = "rings"  # "rings", or "fibonacci": OpenScan's sphere path
    polar_band_deg: tuple[float, float] = (
        12.0,
        125.0,
    )  # fibonacci: from straight above
    order: str = "capture"  # "capture" (ring by ring / nearest neighbour) or "shuffled"
    backdrop: str = (
        "plain"  # "plain", or "still": a textured backdrop fixed in every photo
    )
    mixed_cameras: bool = False  # every other photo from a second body and lens
    shape: str = (
        "lumpy"  # "lumpy", or "holed": with a handle (a through-hole) and a plinth
    )
    camera: str = (
        "mini"  # "mini" (35 mm equivalent in EXIF) or "dslr" (Canon-style EXIF)
    )

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


def object_mesh(spec: TurntableSpec) -> trimesh.Trimesh:
    body = statuette_mesh(spec.seed)
    if spec.shape != "holed":
        return body
    # A handle through which the backdrop shows, and a square plinth.
    handle = trimesh.creation.torus(major_radius=0.17, minor_radius=0.045)
    handle.apply_transform(
        trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0])
    )
    handle.apply_translation([0.45, 0.0, 0.62])
    plinth = trimesh.creation.box(extents=[0.62, 0.62, 0.1])
    plinth.apply_translation([0.0, 0.0, 0.05])
    body.apply_translation([0.0, 0.0, 0.08])
    return trimesh.util.concatenate([plinth, body, handle])


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


def _ring_directions(spec: TurntableSpec) -> list[NDArray[np.float64]]:
    out = []
    for ring, elevation in enumerate(spec.elevations_deg[: spec.rings]):
        for k in range(spec.per_ring):
            az = 2 * math.pi * k / spec.per_ring + ring * 0.3
            el = math.radians(elevation)
            out.append(
                np.array(
                    [
                        math.cos(el) * math.cos(az),
                        math.cos(el) * math.sin(az),
                        math.sin(el),
                    ]
                )
            )
    return out


def _fibonacci_directions(spec: TurntableSpec) -> list[NDArray[np.float64]]:
    """OpenScan's path: a Fibonacci spiral over a band of the sphere, visited
    nearest-neighbour first (as the rig's path planner orders it)."""
    lo, hi = (math.cos(math.radians(a)) for a in spec.polar_band_deg)
    golden = math.pi * (3.0 - math.sqrt(5.0))
    dirs = []
    for i in range(spec.views):
        z = lo + (hi - lo) * (i + 0.5) / spec.views
        r = math.sqrt(max(0.0, 1.0 - z * z))
        dirs.append(np.array([r * math.cos(golden * i), r * math.sin(golden * i), z]))
    order, left = [0], set(range(1, len(dirs)))
    while left:
        last = dirs[order[-1]]
        nxt = min(left, key=lambda j: (float(np.linalg.norm(dirs[j] - last)), j))
        order.append(nxt)
        left.remove(nxt)
    return [dirs[i] for i in order]


def camera_poses(spec: TurntableSpec, target: NDArray[np.float64]) -> list[dict]:
    """World-to-camera poses along the capture path, in capture order."""
    dirs = (
        _fibonacci_directions(spec)
        if spec.path == "fibonacci"
        else _ring_directions(spec)
    )
    poses = []
    for offset in dirs:
        centre = target + spec.distance * offset
        forward = (target - centre) / np.linalg.norm(target - centre)
        right = np.cross(forward, [0.0, 0.0, 1.0])
        if np.linalg.norm(right) < 1e-6:  # straight above: any right will do
            right = np.array([1.0, 0.0, 0.0])
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        rot = np.stack([right, down, forward])
        poses.append({"R": rot, "t": -rot @ centre, "centre": centre})
    return poses


def _backdrop(spec: _Body, w: int, h: int) -> NDArray[np.float64]:
    """The background of every photo: a soft gradient, or a still textured cloth
    (the same pixels in every photo, as behind a rig whose camera never moves)."""
    grad = np.repeat(np.linspace(0.22, 0.3, h)[:, None], w, 1)
    if spec.backdrop != "still":
        return np.repeat(grad.reshape(-1)[:, None], 3, 1)
    rng = np.random.default_rng(spec.seed + 99)
    out = np.zeros((h, w, 3))
    for cells, weight in ((6, 0.5), (20, 0.35), (64, 0.3)):
        grid = rng.random((cells, cells * w // h + 1, 3))
        zoom = (h / grid.shape[0], w / grid.shape[1], 1)
        out += weight * ndimage.zoom(grid, zoom, order=1)[:h, :w]
    out = (out - out.mean()) * 2.0 + 0.45
    return np.clip(out, 0.03, 1.0).reshape(-1, 3)


def _render(
    scene: o3d.t.geometry.RaycastingScene,
    texture: list[_SolidTexture],
    pose: dict,
    focal: float,
    spec: _Body,
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
    img = _backdrop(spec, w, h)
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


def _exif(focal_px: float, width: int, height: int, model: str) -> Image.Exif:
    exif = Image.Exif()
    exif[_TAG_MAKE] = "OpenScan"
    exif[_TAG_MODEL] = model
    exif[_TAG_ORIENTATION] = 1
    ifd = exif.get_ifd(_EXIF_IFD)
    if model.startswith("Canon"):
        # A Canon APS-C body: focal length in mm and the focal-plane
        # resolution, no 35 mm equivalent (as Canon writes it).
        exif[_TAG_MAKE] = "Canon"
        ifd[_TAG_FOCAL] = round(focal_px * DSLR_SENSOR_WIDTH_MM / width, 1)
        ifd[0xA20E] = width / DSLR_SENSOR_WIDTH_MM * 25.4  # FocalPlaneXResolution
        ifd[0xA20F] = width / DSLR_SENSOR_WIDTH_MM * 25.4
        ifd[0xA210] = 2  # inches
        return exif
    ifd[_TAG_FOCAL] = round(focal_px * SENSOR_WIDTH_MM / width, 3)
    ifd[_TAG_FOCAL_35] = round(focal_px * _DIAGONAL_35MM / math.hypot(width, height))
    return exif


def generate(out_dir: Path, spec: TurntableSpec) -> Path:
    """Render ``spec`` into ``out_dir`` (reused when already complete); return
    out_dir."""
    out_dir = Path(out_dir)
    marker = out_dir / "cameras_gt.json"
    if marker.exists() and json.loads(marker.read_text()).get("spec") == _spec_dict(
        spec
    ):
        return out_dir
    images = out_dir / "images"
    images.mkdir(parents=True, exist_ok=True)
    mesh = object_mesh(spec)
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
    poses = camera_poses(spec, target)
    # Shuffled sets carry names in random order, as merged or renamed folders do.
    numbers = (
        np.random.default_rng(spec.seed + 5).permutation(len(poses))
        if spec.order == "shuffled"
        else np.arange(len(poses))
    )
    cameras = []
    for i, pose in enumerate(poses):
        name = f"IMG_{numbers[i]:04d}.jpg"
        body = _body(spec, i)
        focal = 0.5 * body.width / math.tan(math.radians(body.fov_deg) / 2)
        pixels = _render(scene, textures, pose, focal, body)
        Image.fromarray(pixels).save(
            images / name,
            quality=spec.jpeg_quality,
            exif=_exif(focal, body.width, body.height, body.model),
        )
        cameras.append(
            {
                "name": name,
                "R": pose["R"].tolist(),
                "t": pose["t"].tolist(),
                "centre": pose["centre"].tolist(),
                "K": [
                    [focal, 0, body.width / 2],
                    [0, focal, body.height / 2],
                    [0, 0, 1],
                ],
                "width": body.width,
                "height": body.height,
            }
        )
    marker.write_text(
        json.dumps({"spec": _spec_dict(spec), "cameras": cameras}, indent=1)
    )
    return out_dir


@dataclass(frozen=True, slots=True)
class _Body:
    """One camera body and lens; ``_render`` reads its size and supersampling."""

    model: str
    width: int
    height: int
    fov_deg: float
    supersample: int
    backdrop: str
    seed: int


def _body(spec: TurntableSpec, index: int) -> _Body:
    model, width, height, fov = "Synthetic Mini", spec.width, spec.height, spec.fov_deg
    if spec.camera == "dslr":
        model = "Canon EOS 450D"
    elif spec.mixed_cameras and index % 2:
        # A second camera: other sensor size, aspect and a longer lens.
        model, width = "Synthetic DSLR", spec.width * 5 // 4 // 8 * 8
        height, fov = width * 2 // 3, spec.fov_deg * 0.8
    return _Body(model, width, height, fov, spec.supersample, spec.backdrop, spec.seed)


def _spec_dict(spec: TurntableSpec) -> dict:
    return {k: getattr(spec, k) for k in spec.__dataclass_fields__} | {
        "elevations_deg": list(spec.elevations_deg),
        "polar_band_deg": list(spec.polar_band_deg),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--views", type=int, default=48)
    parser.add_argument("--size", default="1024x768")
    parser.add_argument("--no-turntable", action="store_true")
    parser.add_argument(
        "--path", choices=("rings", "fibonacci", "handheld"), default="rings"
    )
    parser.add_argument("--shape", choices=("lumpy", "holed"), default="lumpy")
    parser.add_argument("--camera", choices=("mini", "dslr"), default="mini")
    parser.add_argument("--order", choices=("capture", "shuffled"), default="capture")
    parser.add_argument("--backdrop", choices=("plain", "still"), default="plain")
    parser.add_argument("--mixed-cameras", action="store_true")
    args = parser.parse_args()
    width, height = (int(x) for x in args.size.split("x"))
    spec = spec_for(
        args.views,
        width,
        height,
        turntable=not args.no_turntable,
        path=args.path,
        order=args.order,
        backdrop=args.backdrop,
        mixed_cameras=args.mixed_cameras,
        shape=args.shape,
        camera=args.camera,
    )
    print(generate(args.out_dir, spec))


if __name__ == "__main__":
    main()
