"""The outputs beside model.glb: the Draco preview, the OBJ zip, STL, coverage and
the real-size copies, checked on the real engine's result (no Django)."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import DracoPy
import numpy as np
import pygltflib
import pytest
import trimesh
from PIL import Image
from scipy.spatial import cKDTree

from projects.pipeline import ReconstructionResult
from projects.pipeline.engine import SparseCamera, SparseModel
from projects.pipeline.real_size import write_real_size
from projects.pipeline.steps.coverage import (
    MAX_SAMPLES,
    NOTABLE_SHARE,
    THRESHOLD,
    surface_coverage,
)


def _mesh(path: Path, file_type: str | None = None) -> trimesh.Trimesh:
    return trimesh.load(path, force="mesh", file_type=file_type, process=False)


def test_preview_is_draco_geometry_with_a_small_jpeg(
    fast_result: ReconstructionResult,
) -> None:
    """model_preview.glb: the model's faces Draco-compressed, a JPEG <= 1024 px."""
    preview = pygltflib.GLTF2.load_binary(str(fast_result.outputs.preview_glb))
    full = _mesh(fast_result.outputs.glb)
    (primitive,) = preview.meshes[0].primitives
    draco = primitive.extensions["KHR_draco_mesh_compression"]
    assert preview.extensionsRequired == ["KHR_draco_mesh_compression"]
    blob = preview.binary_blob()
    view = preview.bufferViews[draco["bufferView"]]
    decoded = DracoPy.decode(blob[view.byteOffset : view.byteOffset + view.byteLength])
    # The same surface in the same frame, positions kept to 14 bits.
    assert len(decoded.faces) == len(full.faces) == fast_result.faces
    # Draco may split a vertex where the surface is not a manifold; every point
    # it keeps is still one of the model's, to 14 bits.
    step = np.ptp(full.vertices, axis=0).max() / 2**14
    distance, _ = cKDTree(full.vertices).query(decoded.points)
    assert distance.max() < 2 * step
    assert np.allclose(decoded.points.min(axis=0), full.bounds[0], atol=2 * step)
    assert np.allclose(decoded.points.max(axis=0), full.bounds[1], atol=2 * step)
    assert preview.accessors[primitive.attributes.POSITION].count == len(decoded.points)
    image_view = preview.bufferViews[preview.images[0].bufferView]
    assert preview.images[0].mimeType == "image/jpeg"
    jpeg = blob[image_view.byteOffset : image_view.byteOffset + image_view.byteLength]
    with Image.open(io.BytesIO(jpeg)) as texture:
        assert texture.format == "JPEG"
        assert max(texture.size) <= 1024
    assert fast_result.outputs.preview_glb.stat().st_size < (
        fast_result.outputs.glb.stat().st_size / 3
    )


def test_obj_zip_opens_with_its_texture(
    fast_result: ReconstructionResult, tmp_path: Path
) -> None:
    """model_obj.zip unpacked anywhere: trimesh finds the MTL and the texture."""
    with zipfile.ZipFile(fast_result.outputs.obj_bundle) as bundle:
        assert sorted(bundle.namelist()) == ["model.mtl", "model.obj", "texture.jpg"]
        bundle.extractall(tmp_path)
    mesh = _mesh(tmp_path / "model.obj")
    with Image.open(fast_result.outputs.texture) as texture:
        size = texture.size
    assert mesh.visual.material.image is not None
    assert mesh.visual.material.image.size == size
    assert len(mesh.faces) == fast_result.faces


def test_stl_is_the_model_surface(fast_result: ReconstructionResult) -> None:
    stl = _mesh(fast_result.outputs.stl, "stl")
    glb = _mesh(fast_result.outputs.glb)
    assert len(stl.faces) == len(glb.faces)
    assert np.allclose(stl.bounds, glb.bounds, atol=1e-5)


def test_coverage_json_follows_the_contract(fast_result: ReconstructionResult) -> None:
    """coverage.json: threshold, low share, sentence, and samples only of poorly
    seen surface near the model; report.json carries the same block."""
    coverage = json.loads(fast_result.outputs.coverage.read_text())
    report = json.loads(fast_result.outputs.report.read_text())
    assert coverage["threshold"] == THRESHOLD
    assert 0.0 <= coverage["low_share"] <= 1.0
    assert coverage["sentence"]
    assert report["coverage"] == {
        k: coverage[k] for k in ("threshold", "low_share", "sentence")
    }
    counts = coverage["samples"]["counts"]
    positions = np.array(coverage["samples"]["positions"]).reshape(-1, 3)
    assert len(positions) == len(counts) <= MAX_SAMPLES
    assert all(0 <= c < THRESHOLD for c in counts)
    # Where the samples lie is checked on a box below and on the 24-photo set
    # (tests/e2e/test_outputs.py); this set's two rings see nearly everything.
    assert (coverage["sentence"] in fast_result.warnings) == (
        coverage["low_share"] >= NOTABLE_SHARE
    )


def _ring(heights: list[float], azimuths: np.ndarray) -> SparseModel:
    """Cameras looking at the origin from ``heights`` and ``azimuths``, 640x480."""
    cameras = []
    for height in heights:
        for azimuth in azimuths:
            centre = np.array([4 * np.sin(azimuth), height, 4 * np.cos(azimuth)])
            forward = -centre / np.linalg.norm(centre)
            right = np.cross(forward, [0.0, 1.0, 0.0])
            right /= np.linalg.norm(right)
            down = np.cross(forward, right)
            R = np.stack([right, down, forward])
            K = np.array([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]])
            name = f"IMG_{len(cameras):04d}.jpg"
            cameras.append(SparseCamera(name, 640, 480, K, 0.0, R, -R @ centre))
    return SparseModel(
        tuple(cameras),
        np.zeros((0, 3)),
        np.zeros((0, 3), np.uint8),
        np.zeros(0, np.int32),
        np.zeros(0),
        (),
        0.0,
    )


@pytest.mark.parametrize(
    ("azimuths", "region"),
    [
        (np.linspace(0, 2 * np.pi, 12, endpoint=False), "The underside"),
        # Only the half in front of the first photo (+Z), from -80 to +80 degrees.
        (np.radians(np.linspace(-80, 80, 9)), "the back"),
    ],
)
def test_coverage_names_the_part_no_photo_saw(
    azimuths: np.ndarray, region: str
) -> None:
    box = trimesh.creation.box(extents=(1.0, 1.0, 1.0)).subdivide().subdivide()
    model = _ring([1.5, 3.0], azimuths)
    seen = surface_coverage(
        np.asarray(box.vertices), np.asarray(box.faces), model, first_photo="A.jpg"
    )
    assert region in seen.report.sentence
    assert f"fewer than {THRESHOLD} photos" in seen.report.sentence
    if region == "The underside":  # one face of six, exactly
        assert seen.report.low_share == pytest.approx(1 / 6, abs=0.01)
        assert np.all(seen.positions[:, 1] < -0.5)
    else:
        assert "as seen from the first photo (A.jpg)" in seen.report.sentence
    assert len(seen.positions) == len(seen.counts) > 0


def test_real_size_copies_are_the_originals_times_the_scale(
    fast_result: ReconstructionResult, tmp_path: Path
) -> None:
    """mm for STL, PLY and the OBJ; metres for the GLB (glTF's unit)."""
    out = fast_result.outputs.glb.parent
    k = 87.5
    sizes = write_real_size(out, tmp_path, k)
    assert set(sizes) == {
        "model_metres.glb",
        "model_obj_mm.zip",
        "model_mm.stl",
        "points_mm.ply",
    }
    glb = _mesh(fast_result.outputs.glb)
    assert np.allclose(
        _mesh(tmp_path / "model_metres.glb").bounds, glb.bounds * k / 1000, rtol=1e-5
    )
    assert np.allclose(
        _mesh(tmp_path / "model_mm.stl", "stl").bounds, glb.bounds * k, rtol=1e-5
    )
    points = trimesh.load(fast_result.outputs.points)
    scaled_points = trimesh.load(tmp_path / "points_mm.ply")
    assert np.allclose(scaled_points.bounds, points.bounds * k, rtol=1e-5)
    assert np.array_equal(scaled_points.colors, points.colors)
    unpacked = tmp_path / "obj"
    with zipfile.ZipFile(tmp_path / "model_obj_mm.zip") as bundle:
        bundle.extractall(unpacked)
    obj = _mesh(unpacked / "model.obj")
    assert np.allclose(obj.bounds, glb.bounds * k, atol=1e-4)
    assert obj.visual.material.image is not None
