"""What a finished project offers, on the session's real engine run: the OBJ zip
that opens with its texture, the Draco preview in the viewer (page weight and
first frame measured), coverage for the viewer, and the real size (portal view,
REST API, rescaled downloads)."""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import trimesh
from django.contrib.auth import get_user_model
from django.core.files.storage import default_storage
from django.test import Client
from django.urls import reverse
from PIL import Image
from rest_framework.test import APIClient
from scipy.spatial import cKDTree

from projects.models import Project
from projects.pipeline.gltf import glb_bounds
from tests.e2e.conftest import DESKTOP, PHONE
from tests.e2e.pages import canvas_variance, collect_console_errors, logged_in_context

pytestmark = [pytest.mark.engine]

PREVIEW_GOAL = 1_500_000  # bytes, issue 12 item 4


def _owner_client(token, *, csrf: bool = True) -> Client:
    user = get_user_model().objects.create_user(
        username=f"owner{token.pk}", email=token.email, password="turntable-Vase-2041"
    )
    token.user = user
    token.save(update_fields=["user"])
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


def _detail(client: Client, project: Project):
    response = client.get(reverse("projects:detail", kwargs={"project_id": project.id}))
    assert response.status_code == 200
    return response


def _download(client: Client, downloads: list[dict], name: str) -> bytes:
    (entry,) = [d for d in downloads if d["name"] == name]
    response = client.get(entry["url"])
    assert response.status_code == 200, name
    return b"".join(response.streaming_content)


def _load(data: bytes, file_type: str) -> trimesh.Trimesh:
    return trimesh.load(
        io.BytesIO(data), file_type=file_type, force="mesh", process=False
    )


def _csrf(client: Client, project: Project) -> str:
    _detail(client, project)
    return client.cookies["csrftoken"].value


@pytest.mark.django_db
def test_obj_download_opens_with_its_texture(
    make_token, make_done_project, engine_run, tmp_path: Path
) -> None:
    """The downloads list offers the OBJ as one zip; unpacked, trimesh finds the
    MTL and the texture (the separate parts are not listed)."""
    token, _key = make_token()
    project = make_done_project(token)
    client = _owner_client(token)

    downloads = _detail(client, project).context["downloads"]
    names = [d["name"] for d in downloads]
    assert "model_obj.zip" in names
    assert "model.stl" in names
    assert not {"model.obj", "model.mtl", "texture.jpg"} & set(names)
    with zipfile.ZipFile(
        io.BytesIO(_download(client, downloads, "model_obj.zip"))
    ) as z:
        z.extractall(tmp_path)
    mesh = trimesh.load(tmp_path / "model.obj", force="mesh", process=False)
    with Image.open(engine_run["out_dir"] / "texture.jpg") as texture:
        assert mesh.visual.material.image is not None
        assert mesh.visual.material.image.size == texture.size
    assert len(mesh.faces) == engine_run["result"].faces


@pytest.mark.django_db
def test_viewer_config_points_at_preview_decoder_and_coverage(
    make_token, make_done_project, engine_run
) -> None:
    token, _key = make_token()
    project = make_done_project(token)
    client = _owner_client(token)

    config = _detail(client, project).context["viewer_config"]
    assert config["model_url"].endswith("/files/model_preview.glb")
    assert config["full_model_url"].endswith("/files/model.glb")
    assert config["scale"] is None
    assert config["scale_url"] == reverse(
        "projects:scale", kwargs={"project_id": project.id}
    )
    assert config["draco_path"].endswith("/draco/gltf/")
    wasm = client.get(config["draco_path"] + "draco_decoder.wasm")
    assert wasm.status_code == 200
    assert b"".join(wasm.streaming_content)[:4] == b"\0asm"
    coverage = json.loads(
        b"".join(client.get(config["coverage_url"]).streaming_content)
    )
    assert coverage["threshold"] == 3
    assert len(coverage["samples"]["positions"]) == 3 * len(
        coverage["samples"]["counts"]
    )
    assert coverage["sentence"] == engine_run["result"].coverage.sentence
    # The turntable never shows the underside: the advice says so, and the
    # samples lie on the model's lower surface.
    assert coverage["low_share"] > 0.03
    assert "the underside" in coverage["sentence"]
    positions = np.array(coverage["samples"]["positions"]).reshape(-1, 3)
    model = trimesh.load(engine_run["out_dir"] / "model.glb", force="mesh")
    distance, _ = cKDTree(model.vertices).query(positions)
    assert distance.max() < 0.02 * np.linalg.norm(model.extents)
    assert np.median(positions[:, 1]) < model.bounds.mean(axis=0)[1]
    preview = engine_run["out_dir"] / "model_preview.glb"
    assert preview.stat().st_size <= PREVIEW_GOAL


@pytest.mark.django_db
def test_owner_sets_the_real_size_and_downloads_are_rescaled(
    make_token, make_done_project, django_capture_on_commit_callbacks
) -> None:
    """The portal view (CSRF, owner only, JSON) sets the scale; STL and GLB come
    back at the model's size times mm per unit; clearing restores the originals."""
    token, _key = make_token()
    project = make_done_project(token)
    client = _owner_client(token)
    stranger_token, _ = make_token()
    stranger = _owner_client(stranger_token, csrf=False)
    url = reverse("projects:scale", kwargs={"project_id": project.id})
    low, high = glb_bounds(
        Path(default_storage.path(f"{project.result_path}/model.glb"))
    )
    # Two corners of the box, one model-unit-diagonal apart, said to be 250 mm.
    body = {"point_a": low.tolist(), "point_b": high.tolist(), "distance_mm": 250.0}
    mm_per_unit = 250.0 / float(np.linalg.norm(high - low))

    assert client.post(url, body, content_type="application/json").status_code == 403
    csrf = _csrf(client, project)
    refused = stranger.post(url, body, content_type="application/json")
    assert refused.status_code == 404
    for bad, reason in (
        ({**body, "distance_mm": 0}, "above 0"),
        ({**body, "distance_mm": "12"}, "above 0"),
        ({**body, "point_b": body["point_a"]}, "too close"),
        ({**body, "point_a": [0, 0, float("nan")]}, "finite"),
        ({**body, "point_a": (high * 5).tolist()}, "not on the model"),
        ({**body, "distance_mm": 5e7}, "millimetres"),
    ):
        response = client.post(
            url,
            json.dumps(bad, allow_nan=True),
            content_type="application/json",
            HTTP_X_CSRFTOKEN=csrf,
        )
        assert response.status_code == 400, bad
        assert reason in response.json()["detail"], response.json()
    project.refresh_from_db()
    assert project.mm_per_unit is None

    response = client.post(
        url, body, content_type="application/json", HTTP_X_CSRFTOKEN=csrf
    )
    assert response.status_code == 200, response.content
    answer = response.json()
    assert answer["mm_per_unit"] == pytest.approx(mm_per_unit)
    assert answer["dimensions_mm"] == pytest.approx(
        ((high - low) * mm_per_unit).tolist(), abs=0.01
    )

    page = _detail(client, project)
    assert page.context["viewer_config"]["scale"] == {
        "mm_per_unit": pytest.approx(mm_per_unit)
    }
    downloads = page.context["downloads"]
    names = [d["name"] for d in downloads]
    assert {
        "model_metres.glb",
        "model_obj_mm.zip",
        "model_mm.stl",
        "points_mm.ply",
    } <= (set(names))
    assert not {"model.glb", "model_obj.zip", "model.stl", "points.ply"} & set(names)
    original = _load(
        default_storage.open(f"{project.result_path}/model.glb").read(), "glb"
    )
    stl = _load(_download(client, downloads, "model_mm.stl"), "stl")
    glb = _load(_download(client, downloads, "model_metres.glb"), "glb")
    assert np.allclose(stl.extents, original.extents * mm_per_unit, rtol=1e-4)
    assert np.allclose(glb.extents, original.extents * mm_per_unit / 1000, rtol=1e-4)
    # The viewer keeps the pipeline's original.
    viewer_glb = client.get(page.context["viewer_config"]["full_model_url"])
    viewer_mesh = _load(b"".join(viewer_glb.streaming_content), "glb")
    assert np.allclose(viewer_mesh.extents, original.extents)

    project.refresh_from_db()
    prefix = project.scale["prefix"]
    with django_capture_on_commit_callbacks(execute=True):
        cleared = client.post(
            url, {"clear": True}, content_type="application/json", HTTP_X_CSRFTOKEN=csrf
        )
    assert cleared.json() == {"mm_per_unit": None, "dimensions_mm": None}
    assert "model.stl" in [
        d["name"] for d in _detail(client, project).context["downloads"]
    ]
    assert default_storage.listdir(prefix) == ([], [])


@pytest.mark.django_db
def test_api_sets_and_reports_the_scale(make_token, make_done_project) -> None:
    token, key = make_token()
    project = make_done_project(token)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    url = f"/api/v1/projects/{project.id}/scale/"
    low, high = glb_bounds(
        Path(default_storage.path(f"{project.result_path}/model.glb"))
    )

    assert api.get(f"/api/v1/projects/{project.id}/").json()["scale"] is None
    bad = api.post(url, {"point_a": [0, 0], "distance_mm": 10}, format="json")
    assert bad.status_code == 400
    assert bad.json()["error"]
    too_close = api.post(
        url,
        {"point_a": low.tolist(), "point_b": low.tolist(), "distance_mm": 10},
        format="json",
    )
    assert too_close.status_code == 400
    assert "too close" in too_close.json()["error"]

    body = api.post(
        url,
        {"point_a": low.tolist(), "point_b": high.tolist(), "distance_mm": 300},
        format="json",
    ).json()
    mm_per_unit = 300 / float(np.linalg.norm(high - low))
    assert body["scale"]["mm_per_unit"] == pytest.approx(mm_per_unit)
    assert body["scale"]["dimensions_mm"] == pytest.approx(
        ((high - low) * mm_per_unit).tolist(), abs=0.01
    )
    assert "model_mm.stl" in [d["name"] for d in body["downloads"]]
    assert api.get(f"/api/v1/projects/{project.id}/").json()["scale"] == body["scale"]
    assert api.post(url, {"clear": True}, format="json").json()["scale"] is None


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_viewer_draws_the_draco_preview_light_and_fast(
    browser, live_server, person, make_done_project, artifacts
) -> None:
    """Desktop and phone: the preview (Draco + JPEG) is drawn with no console
    error and no CSP violation, model.glb is not fetched; bytes moved and the
    first frame are measured and printed for the report."""
    user, token = person
    project = make_done_project(token)
    url = f"{live_server.url}/projects/{project.id}/"
    for label, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        context = logged_in_context(browser, live_server.url, user, viewport=viewport)
        page = context.new_page()
        errors = collect_console_errors(page)
        sizes: dict[str, int] = {}
        cdp = context.new_cdp_session(page)
        cdp.send("Network.enable")
        urls: dict[str, str] = {}
        cdp.on(
            "Network.responseReceived",
            lambda e, urls=urls: urls.__setitem__(e["requestId"], e["response"]["url"]),
        )
        cdp.on(
            "Network.loadingFinished",
            lambda e, urls=urls, sizes=sizes: sizes.__setitem__(
                urls.get(e["requestId"], e["requestId"]), int(e["encodedDataLength"])
            ),
        )
        started = time.monotonic()
        page.goto(url)
        page.wait_for_selector("#viewer[data-state=ready]", timeout=60_000)
        first_frame_ms = page.evaluate(
            "() => new Promise(r => requestAnimationFrame(() => r(performance.now())))"
        )
        wall = time.monotonic() - started
        page.wait_for_timeout(500)
        assert canvas_variance(page) > 8, "the viewer's canvas is blank"
        page.locator("#viewer").screenshot(
            path=str(artifacts / f"outputs-draco-preview-{label}.png")
        )
        fetched = list(sizes)
        assert any(u.endswith("/files/model_preview.glb") for u in fetched)
        assert any(u.endswith("draco_decoder.wasm") for u in fetched)
        assert not any(u.endswith("/files/model.glb") for u in fetched)
        preview = next(v for u, v in sizes.items() if u.endswith("model_preview.glb"))
        assert preview <= PREVIEW_GOAL
        print(
            f"\n[{label}] preview {preview} B, page {sum(sizes.values())} B in "
            f"{len(sizes)} requests, first frame {first_frame_ms:.0f} ms after "
            f"navigation ({wall:.2f} s wall)"
        )
        assert errors == []
        context.close()
