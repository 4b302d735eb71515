"""Export: GLB (trimesh; Open3D's GLB fails validation), the Draco preview,
OBJ+MTL+texture (alone and as one zip), STL, points, cameras, coverage, report,
thumbnail and the result zip."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import cv2
import numpy as np
import trimesh
from numpy.typing import NDArray
from PIL import Image

from projects.pipeline.engine import SparseModel
from projects.pipeline.gltf import write_draco_glb
from projects.pipeline.steps.coverage import SurfaceCoverage, write_coverage
from projects.pipeline.steps.texture import TexturedMesh
from projects.pipeline.types import (
    ARCHIVE_NAME,
    COVERAGE_NAME,
    OBJ_BUNDLE_NAME,
    OBJ_PARTS,
    RESULT_FILES,
    TEXTURE_NAME,
    CountCallback,
    ReconstructionOutputs,
    ignore_count,
)

ARCHIVE_MEMBERS = tuple(f.name for f in RESULT_FILES if f.in_archive)


def _trimesh(mesh: TexturedMesh) -> trimesh.Trimesh:
    # trimesh keeps OpenGL-style UVs (origin bottom-left) and flips them for glTF.
    uv = np.column_stack([mesh.uvs[:, 0], 1.0 - mesh.uvs[:, 1]])
    material = trimesh.visual.material.PBRMaterial(
        baseColorTexture=Image.fromarray(mesh.texture),
        metallicFactor=0.0,
        roughnessFactor=1.0,
    )
    visual = trimesh.visual.TextureVisuals(uv=uv, material=material)
    return trimesh.Trimesh(mesh.vertices, mesh.faces, visual=visual, process=False)


def write_glb(mesh: TexturedMesh, path: Path) -> None:
    path.write_bytes(trimesh.Scene(_trimesh(mesh)).export(file_type="glb"))


def write_obj(mesh: TexturedMesh, out_dir: Path) -> None:
    lines = ["# OpenScan Portal reconstruction", "mtllib model.mtl", "usemtl textured"]
    lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in mesh.vertices]
    lines += [f"vt {u:.6f} {1.0 - v:.6f}" for u, v in mesh.uvs]
    lines += [f"f {a}/{a} {b}/{b} {c}/{c}" for a, b, c in mesh.faces + 1]
    (out_dir / "model.obj").write_text("\n".join(lines) + "\n")
    (out_dir / "model.mtl").write_text(
        "newmtl textured\nKa 1 1 1\nKd 1 1 1\nKs 0 0 0\nd 1\nillum 1\nmap_Kd "
        f"{TEXTURE_NAME}\n"
    )


def write_obj_bundle(out_dir: Path, path: Path) -> None:
    """model.obj with its MTL and texture in one zip: alone, they lose each other."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in OBJ_PARTS:
            zf.write(out_dir / name, arcname=name)


def write_stl(mesh: TexturedMesh, path: Path) -> None:
    """Binary STL for slicers; ``merge_vertices`` joins the atlas's seam copies."""
    solid = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
    solid.merge_vertices()
    path.write_bytes(solid.export(file_type="stl"))


def write_preview(mesh: TexturedMesh, path: Path) -> None:
    write_draco_glb(
        vertices=mesh.vertices,
        faces=mesh.faces,
        uvs=mesh.uvs,
        texture=mesh.texture,
        path=path,
    )


def write_points(
    points: NDArray[np.float64], colors: NDArray[np.float64], path: Path
) -> None:
    rgba = np.column_stack(
        [np.clip(colors * 255, 0, 255), np.full(len(colors), 255)]
    ).astype(np.uint8)
    trimesh.PointCloud(points, colors=rgba).export(path)


def cameras_document(
    model: SparseModel, sources: Mapping[str, str] = MappingProxyType({})
) -> dict[str, Any]:
    """``name`` is the stored photo, ``source`` its name in the user's upload."""
    cams = []
    for cam in model.cameras:
        # glTF cameras look down -Z with +Y up; COLMAP's look down +Z with +Y down.
        to_world = np.eye(4)
        to_world[:3, :3] = cam.R.T @ np.diag([1.0, -1.0, -1.0])
        to_world[:3, 3] = cam.centre
        cams.append(
            {
                "name": cam.name,
                "source": sources.get(cam.name, cam.name),
                "centre": cam.centre.round(6).tolist(),
                "rotation": cam.R.round(8).tolist(),
                "translation": cam.t.round(6).tolist(),
                "gltf_camera_to_world": to_world.round(8).tolist(),
                "intrinsics": {
                    "width": cam.width,
                    "height": cam.height,
                    "fx": round(float(cam.K[0, 0]), 4),
                    "fy": round(float(cam.K[1, 1]), 4),
                    "cx": round(float(cam.K[0, 2]), 4),
                    "cy": round(float(cam.K[1, 2]), 4),
                    "k1": round(cam.radial, 8),
                },
            }
        )
    return {
        "frame": "same as model.glb: +Y up, object centred at the origin, arbitrary "
        "scale",
        "convention": "rotation/translation map world to camera (x right, y down, z "
        "forward)",
        "cameras": cams,
    }


def write_thumbnail(
    model: SparseModel, image_dir: Path, path: Path, size: int = 512
) -> None:
    """The sharpest registered photo near the first ring, downscaled."""
    best, best_score = None, -1.0
    step = max(1, len(model.cameras) // 12)
    for cam in model.cameras[::step]:
        gray = cv2.imread(str(image_dir / cam.name), cv2.IMREAD_REDUCED_GRAYSCALE_4)
        score = (
            float(cv2.Laplacian(gray, cv2.CV_32F).var()) if gray is not None else -1.0
        )
        if score > best_score:
            best, best_score = cam.name, score
    with Image.open(image_dir / str(best)) as image:
        image.thumbnail((size, size))
        image.convert("RGB").save(path)


def write_archive(out_dir: Path) -> Path:
    archive = out_dir / ARCHIVE_NAME
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in ARCHIVE_MEMBERS:
            if (out_dir / name).exists():
                zf.write(out_dir / name, arcname=name)
    return archive


def export_all(
    *,
    out_dir: Path,
    mesh: TexturedMesh,
    preview: TexturedMesh | None,
    points: NDArray[np.float64],
    colors: NDArray[np.float64],
    model: SparseModel,
    image_dir: Path,
    coverage: SurfaceCoverage,
    sources: Mapping[str, str] = MappingProxyType({}),
    on_file: CountCallback = ignore_count,
) -> ReconstructionOutputs:
    """Write every output except report.json (written last by the caller)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = 8  # progress: the writes below, counted as they finish
    write_glb(mesh, out_dir / "model.glb")
    on_file(1, files)
    write_preview(mesh if preview is None else preview, out_dir / "model_preview.glb")
    on_file(2, files)
    Image.fromarray(mesh.texture).save(out_dir / TEXTURE_NAME, quality=92)
    on_file(3, files)
    write_obj(mesh, out_dir)
    write_obj_bundle(out_dir, out_dir / OBJ_BUNDLE_NAME)
    on_file(4, files)
    write_stl(mesh, out_dir / "model.stl")
    write_coverage(coverage, out_dir / COVERAGE_NAME)
    on_file(5, files)
    write_points(points, colors, out_dir / "points.ply")
    on_file(6, files)
    (out_dir / "cameras.json").write_text(
        json.dumps(cameras_document(model, sources), indent=1)
    )
    on_file(7, files)
    write_thumbnail(model, image_dir, out_dir / "thumbnail.png")
    on_file(8, files)
    return ReconstructionOutputs(
        glb=out_dir / "model.glb",
        preview_glb=out_dir / "model_preview.glb",
        obj=out_dir / "model.obj",
        mtl=out_dir / "model.mtl",
        texture=out_dir / TEXTURE_NAME,
        points=out_dir / "points.ply",
        cameras=out_dir / "cameras.json",
        report=out_dir / "report.json",
        thumbnail=out_dir / "thumbnail.png",
        archive=out_dir / ARCHIVE_NAME,
        stl=out_dir / "model.stl",
        obj_bundle=out_dir / OBJ_BUNDLE_NAME,
        coverage=out_dir / COVERAGE_NAME,
    )
