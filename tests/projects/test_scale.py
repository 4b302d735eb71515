"""The real size service on a small textured box (no engine): validation, the
real-size copies in storage and the downloads, and what forgets the scale."""

import io
import zipfile

import numpy as np
import pytest
import trimesh
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image

from openscan_portal.exceptions import ApplicationError
from projects import selectors
from projects.models import Project
from projects.services import project_reset, project_scale_clear, project_scale_set

pytestmark = pytest.mark.django_db

EXTENTS = (2.0, 1.0, 0.5)
CORNER_A, CORNER_B = [-1.0, -0.5, -0.25], [1.0, 0.5, 0.25]  # opposite corners


def _result_files() -> dict[str, bytes]:
    box = trimesh.creation.box(extents=EXTENTS)
    texture = Image.new("RGB", (64, 64), (200, 120, 40))
    box.visual = trimesh.visual.TextureVisuals(
        uv=(box.vertices[:, :2] - box.vertices[:, :2].min(axis=0)) / 2, image=texture
    )
    jpeg = io.BytesIO()
    texture.save(jpeg, format="JPEG")
    obj = "mtllib model.mtl\nusemtl m\n" + "".join(
        f"v {x} {y} {z}\n" for x, y, z in box.vertices
    )
    obj += "".join(f"f {a + 1} {b + 1} {c + 1}\n" for a, b, c in box.faces)
    bundle = io.BytesIO()
    with zipfile.ZipFile(bundle, "w") as zf:
        zf.writestr("model.obj", obj)
        zf.writestr("model.mtl", "newmtl m\nmap_Kd texture.jpg\n")
        zf.writestr("texture.jpg", jpeg.getvalue())
    points = trimesh.PointCloud(box.vertices, colors=np.full((8, 4), 255, np.uint8))
    return {
        "model.glb": box.export(file_type="glb"),
        "model.stl": trimesh.Trimesh(box.vertices, box.faces).export(file_type="stl"),
        "model_obj.zip": bundle.getvalue(),
        "points.ply": points.export(file_type="ply"),
        "result.zip": b"PK",
    }


@pytest.fixture
def done_box(private_token) -> Project:
    token, _key = private_token
    project = Project.objects.create(
        token=token, name="box.zip", photos=2, filesize=1000, parts=1, status="done"
    )
    project.result_path = f"{project.storage_prefix}/result-1"
    files = _result_files()
    for name, data in files.items():
        default_storage.save(f"{project.result_path}/{name}", ContentFile(data))
    project.progress = {"files": {n: len(d) for n, d in files.items()}}
    project.save()
    return project


def _stored_mesh(project: Project, name: str, file_type: str) -> trimesh.Trimesh:
    with default_storage.open(f"{project.scale['prefix']}/{name}") as fh:
        return trimesh.load(
            io.BytesIO(fh.read()), file_type=file_type, force="mesh", process=False
        )


def test_scale_writes_real_size_copies_that_replace_the_downloads(
    done_box: Project,
) -> None:
    diagonal = float(np.linalg.norm(EXTENTS))
    project = project_scale_set(
        project=done_box, point_a=CORNER_A, point_b=CORNER_B, distance_mm=229.13
    )
    k = 229.13 / diagonal
    assert project.mm_per_unit == pytest.approx(k)
    assert selectors.project_scale(project=project) == {
        "mm_per_unit": pytest.approx(k),
        "dimensions_mm": pytest.approx([e * k for e in EXTENTS], abs=0.01),
    }
    names = [d["name"] for d in selectors.project_downloads(project=project, base=str)]
    assert names == [
        "result.zip",
        "model_metres.glb",
        "model_obj_mm.zip",
        "model_mm.stl",
        "points_mm.ply",
    ]
    stl = _stored_mesh(project, "model_mm.stl", "stl")
    glb = _stored_mesh(project, "model_metres.glb", "glb")
    assert np.allclose(stl.extents, np.array(EXTENTS) * k, rtol=1e-5)
    assert np.allclose(glb.extents, np.array(EXTENTS) * k / 1000, rtol=1e-5)
    # The pipeline's original is untouched.
    with default_storage.open(f"{project.result_path}/model.glb") as fh:
        original = trimesh.load(io.BytesIO(fh.read()), file_type="glb", force="mesh")
    assert np.allclose(original.extents, EXTENTS)
    assert (
        selectors.result_file_path(project=project, filename="model_mm.stl")
        == f"{project.scale['prefix']}/model_mm.stl"
    )


@pytest.mark.parametrize(
    ("point_a", "point_b", "distance", "message"),
    [
        (CORNER_A, CORNER_B, 0, "above 0"),
        (CORNER_A, CORNER_B, -5, "above 0"),
        (CORNER_A, CORNER_B, float("inf"), "above 0"),
        (CORNER_A, CORNER_B, True, "above 0"),
        (CORNER_A, CORNER_B, 250_000, "millimetres"),
        (CORNER_A, CORNER_A, 100, "too close"),
        ([0, 0], CORNER_B, 100, "three finite numbers"),
        ([0, 0, float("nan")], CORNER_B, 100, "three finite numbers"),
        ("0,0,0", CORNER_B, 100, "three finite numbers"),
        ([9, 9, 9], CORNER_B, 100, "not on the model"),
        # 0.02 units apart said to be 99 m: a 10 km model.
        (CORNER_A, [-0.98, -0.5, -0.25], 99_000, "millimetres"),
    ],
)
def test_impossible_input_is_refused_with_a_reason(
    done_box: Project, point_a, point_b, distance, message
) -> None:
    with pytest.raises(ApplicationError) as caught:
        project_scale_set(
            project=done_box, point_a=point_a, point_b=point_b, distance_mm=distance
        )
    assert caught.value.status == 400
    assert message in caught.value.message
    done_box.refresh_from_db()
    assert done_box.mm_per_unit is None


def test_no_scale_before_the_model_is_ready(private_token) -> None:
    project = Project.objects.create(
        token=private_token[0], name="wait.zip", photos=2, filesize=10, parts=1
    )
    with pytest.raises(ApplicationError) as caught:
        project_scale_set(
            project=project, point_a=CORNER_A, point_b=CORNER_B, distance_mm=10
        )
    assert caught.value.status == 409


def test_clear_and_reset_forget_the_scale_and_delete_the_copies(
    done_box: Project, django_capture_on_commit_callbacks
) -> None:
    project = project_scale_set(
        project=done_box, point_a=CORNER_A, point_b=CORNER_B, distance_mm=100
    )
    first = project.scale["prefix"]
    with django_capture_on_commit_callbacks(execute=True):
        project = project_scale_set(
            project=project, point_a=CORNER_A, point_b=CORNER_B, distance_mm=50
        )
    assert default_storage.listdir(first)[1] == []  # the earlier copies are gone
    with django_capture_on_commit_callbacks(execute=True):
        project = project_scale_clear(project=project)
    assert project.mm_per_unit is None
    assert "model.glb" in [
        d["name"] for d in selectors.project_downloads(project=project, base=str)
    ]
    project = project_scale_set(
        project=project, point_a=CORNER_A, point_b=CORNER_B, distance_mm=100
    )
    project = project_reset(project=project)
    assert project.mm_per_unit is None
    assert project.scale == {}


def test_a_result_made_before_the_obj_zip_still_lists_the_obj(done_box) -> None:
    files = done_box.progress["files"]
    del files["model_obj.zip"]
    files.update({"model.obj": 10, "model.mtl": 5, "texture.jpg": 7})
    names = [d["name"] for d in selectors.project_downloads(project=done_box, base=str)]
    assert {"model.obj", "model.mtl", "texture.jpg"} <= set(names)
    files["model_obj.zip"] = 20
    names = [d["name"] for d in selectors.project_downloads(project=done_box, base=str)]
    assert "model_obj.zip" in names
    assert not {"model.obj", "model.mtl", "texture.jpg"} & set(names)
