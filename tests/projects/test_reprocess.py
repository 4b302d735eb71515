"""Processing a project again from the photos already stored (no new upload)."""

import threading

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connections
from django.utils import timezone
from rest_framework.test import APIClient

from projects.models import Project
from projects.services import jobs, project_reprocess
from tests.images import photo_set, zip_bytes
from tests.projects.conftest import queue_project
from tests.workers import input_prepare
from tokens.models import CreditLedgerEntry

pytestmark = pytest.mark.django_db

ZIP = zip_bytes(photo_set(3))


def _finished(token, status: str = "done", name: str = "vase.zip") -> Project:
    """A project the worker joined and checked (input kept), ended as ``status``."""
    queue_project(token, ZIP, name=name, photos=3, preset="fast")
    project = input_prepare()
    result = f"{project.storage_prefix}/result-{project.upload_generation}"
    default_storage.save(f"{result}/model.glb", ContentFile(b"glTF old model"))
    Project.objects.filter(pk=project.pk).update(
        status=status,
        result_path=result if status == "done" else "",
        finished_at=timezone.now(),
        error="" if status == "done" else "gave up",
    )
    project.refresh_from_db()
    return project


def _client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def _charges(token) -> list[int]:
    return list(
        CreditLedgerEntry.objects.filter(token=token, kind="charge")
        .order_by("created_at")
        .values_list("amount", flat=True)
    )


def test_a_done_project_is_queued_again_with_another_preset_and_charged_once_more(
    private_token, django_capture_on_commit_callbacks
):
    token, key = private_token
    project = _finished(token)
    old_result, old_input = project.result_path, project.input_path

    with django_capture_on_commit_callbacks(execute=True):
        r = _client(key).post(
            f"/api/v1/projects/{project.pk}/reprocess/",
            {"preset": "quality"},
            format="json",
        )

    assert r.status_code == 200, r.content
    body = r.json()
    assert (body["status"], body["preset"]) == ("queued", "quality")
    project.refresh_from_db()
    assert project.input_path == old_input
    assert default_storage.exists(old_input)
    assert project.result_path == ""
    assert not default_storage.exists(f"{old_result}/model.glb")
    assert project.site_url == "http://testserver"
    assert "from the 3 photos already uploaded" in project.progress["log"][0]
    assert _charges(token) == [-len(ZIP), -len(ZIP)]
    token.refresh_from_db()
    assert token.credit == 10_000_000_000 - 2 * len(ZIP)
    # The worker takes it from the stored input: nothing to join, a new result folder.
    claimed = jobs.job_claim_next()
    assert claimed.pk == project.pk
    assert claimed.input_path == old_input
    assert f"result-{claimed.upload_generation}" != old_result.rsplit("/", 1)[1]


@pytest.mark.parametrize("status", ["failed", "cancelled"])
def test_a_failed_rerun_is_refunded_by_the_rule(private_token, status):
    token, key = private_token
    project = _finished(token, status=status)
    before = Project.objects.get(pk=project.pk).charged  # spent, or refunded: not back
    assert _client(key).post(
        f"/api/v1/projects/{project.pk}/reprocess/"
    ).status_code == (200)
    project.refresh_from_db()
    assert project.preset == "fast"  # unchanged when not asked
    assert project.charged == len(ZIP)

    jobs._finish_failed(jobs.job_claim_next(), code="engine_error", message="gave up")

    project.refresh_from_db()
    assert (project.status, project.charged) == ("failed", 0)
    token.refresh_from_db()
    # The second run's charge came back; the first one's fate is unchanged.
    assert token.credit == 10_000_000_000 - before
    assert CreditLedgerEntry.objects.filter(token=token, kind="refund").count() == 1


def test_photos_no_longer_stored_is_a_409_telling_to_upload_again(private_token):
    token, key = private_token
    project = _finished(token, status="failed")
    default_storage.delete(project.input_path)
    never_joined = _finished(token, status="failed", name="b.zip")
    Project.objects.filter(pk=never_joined.pk).update(input_path="")
    ledger = CreditLedgerEntry.objects.count()

    for p in (project, never_joined):
        r = _client(key).post(f"/api/v1/projects/{p.pk}/reprocess/")
        assert r.status_code == 409
        assert r.json()["code"] == "input_missing"
        assert "upload the photos again" in r.json()["error"]
        assert Project.objects.get(pk=p.pk).status == "failed"
    assert CreditLedgerEntry.objects.count() == ledger


def test_waiting_for_upload_bad_preset_and_other_tokens_are_refused(
    private_token, make_token
):
    token, key = private_token
    project = _finished(token)
    created = Project.objects.create(
        token=token, name="new.zip", photos=3, filesize=9, parts=1
    )
    client = _client(key)

    r = client.post(f"/api/v1/projects/{created.pk}/reprocess/")
    assert (r.status_code, r.json()["code"]) == (409, "project_not_reprocessable")
    r = client.post(
        f"/api/v1/projects/{project.pk}/reprocess/", {"preset": "ultra"}, format="json"
    )
    assert r.status_code == 400
    assert "preset" in r.json()["fields"]
    other = _client(make_token()[1])
    assert other.post(f"/api/v1/projects/{project.pk}/reprocess/").status_code == 404
    assert Project.objects.get(pk=project.pk).status == "done"


def test_short_credit_is_a_402_and_leaves_the_model(make_token):
    token, key = make_token(credit=len(ZIP) + 10)
    project = _finished(token)

    r = _client(key).post(f"/api/v1/projects/{project.pk}/reprocess/")

    assert r.status_code == 402
    assert "Not enough credit" in r.json()["error"]
    project.refresh_from_db()
    assert project.status == "done"
    assert project.result_path
    assert default_storage.exists(f"{project.result_path}/model.glb")


def test_reprocess_while_queued_changes_nothing(private_token):
    token = private_token[0]
    project = _finished(token)
    project_reprocess(project=project, preset="quality")
    again = project_reprocess(project=project, preset="fast")
    assert (again.status, again.preset) == ("queued", "quality")
    assert len(_charges(token)) == 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_reprocess_calls_make_one_run_and_one_charge(private_token):
    token = private_token[0]
    project = _finished(token, status="cancelled")
    barrier = threading.Barrier(2)
    answers: list[str] = []

    def run() -> None:
        barrier.wait()
        try:
            answers.append(project_reprocess(project=project).status)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert answers == ["queued", "queued"]
    assert len(_charges(token)) == 2  # the first run's, and one for the new run
    assert jobs.job_claim_next().pk == project.pk
    assert jobs.job_claim_next() is None


def test_the_endpoint_is_in_the_openapi_schema(api_client):
    schema = api_client.get("/api/schema/?format=json").json()
    post = schema["paths"]["/api/v1/projects/{project_id}/reprocess/"]["post"]
    assert {"200", "402", "409"} <= set(post["responses"])
    assert "input_missing" in post["description"]
    preset = schema["components"]["schemas"]["ReprocessInput"]["properties"]["preset"]
    enum = preset["allOf"][0]["$ref"].rsplit("/", 1)[1]
    assert schema["components"]["schemas"][enum]["enum"] == [
        "fast",
        "balanced",
        "quality",
    ]
