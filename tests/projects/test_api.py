import hashlib

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient

from projects.models import Project
from tests.images import photo_set, split, zip_bytes
from tests.projects.conftest import patch_part as _patch
from tests.workers import input_prepare
from tokens.models import CreditLedgerEntry

pytestmark = pytest.mark.django_db


def _create(
    client: APIClient,
    data: bytes,
    parts: int = 1,
    name: str = "vase.zip",
    photos: int = 4,
) -> dict:
    r = client.post(
        "/api/v1/projects/",
        {"name": name, "photos": photos, "filesize": len(data), "parts": parts},
        format="json",
    )
    assert r.status_code == 201, r.content
    return r.json()


def test_api_root_advertises_resumable_uploads(api_client):
    body = api_client.get("/api/v1/").json()
    assert body["resumable_uploads"] is True
    assert body["max_part_size"] == 200_000_000


def test_anonymous_requests_get_401_with_a_reason(api_client):
    r = api_client.get("/api/v1/projects/")
    assert r.status_code == 401
    assert r.json()["error"]
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert (
        api_client.get(
            "/api/v1/token/", HTTP_AUTHORIZATION="Bearer osp_wrong"
        ).status_code
        == 401
    )


@pytest.mark.parametrize("keyword", ["Bearer", "Token"])
def test_both_header_keywords_work(private_token, keyword):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"{keyword} {private_token[1]}")
    body = client.get("/api/v1/token/").json()
    assert body["credit"] == 10_000_000_000
    assert body["masked_key"] == private_token[0].masked_key


def test_resumable_upload_survives_an_interruption_and_starts(
    token_client, private_token
):
    data = zip_bytes(photo_set(4, size=(100, 80)))
    project = _create(token_client, data)
    url = project["parts"][0]["upload_url"]
    half = len(data) // 2

    # first half, then a "lost" request: the client asks where to resume
    assert _patch(token_client, url, 0, data[:half]).status_code == 204
    head = token_client.head(url)
    assert head.status_code == 200
    assert head.headers["Upload-Offset"] == str(half)
    assert head.headers["Cache-Control"] == "no-store"
    stale = _patch(token_client, url, 0, data)
    assert stale.status_code == 409
    assert stale.json()["received"] == half
    done = _patch(token_client, url, half, data[half:])
    assert done.status_code == 204
    assert done.headers["Upload-Offset"] == str(len(data))

    started = token_client.post(f"/api/v1/projects/{project['id']}/start/")
    assert started.status_code == 200
    assert started.json()["status"] == "queued"
    stored = input_prepare()  # the worker's first step
    from django.core.files.storage import default_storage

    with default_storage.open(stored.input_path) as fh:
        assert hashlib.sha256(fh.read()).hexdigest() == hashlib.sha256(data).hexdigest()


def test_multi_part_resumable_upload(token_client, settings):
    settings.OPENSCAN_PART_MAX_BYTES = 4_000
    data = zip_bytes(photo_set(3, size=(100, 80)))
    parts = split(data, 4_000)
    project = _create(token_client, data, parts=len(parts))
    for part, body in zip(project["parts"], parts, strict=True):
        assert _patch(token_client, part["upload_url"], 0, body).status_code == 204
    detail = token_client.get(f"/api/v1/projects/{project['id']}/").json()
    assert [p["received"] for p in detail["parts"]] == [len(p) for p in parts]
    assert (
        token_client.post(f"/api/v1/projects/{project['id']}/start/").status_code == 200
    )


def test_start_with_missing_bytes_is_a_400_naming_the_part(token_client):
    data = zip_bytes(photo_set(3))
    project = _create(token_client, data)
    r = token_client.post(f"/api/v1/projects/{project['id']}/start/")
    assert r.status_code == 400
    assert "Part(s) 1 of 1 have not arrived" in r.json()["error"]


def test_another_users_project_is_404_everywhere(token_client, make_token):
    data = zip_bytes(photo_set(3))
    project = _create(token_client, data)
    _, other_key = make_token()
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {other_key}")
    base = f"/api/v1/projects/{project['id']}/"
    missing = "/api/v1/projects/00000000-0000-0000-0000-000000000000/"
    assert other.get(base).status_code == 404
    assert other.get(base).json() == other.get(missing).json()
    assert other.delete(base).status_code == 404
    assert other.post(base + "start/").status_code == 404
    assert _patch(other, base + "parts/0/", 0, data).status_code == 404
    assert other.get("/api/v1/projects/").json()["results"] == []
    assert Project.objects.filter(pk=project["id"]).exists()


def test_list_detail_and_delete_refunds_an_unprocessed_project(
    token_client, private_token
):
    data = zip_bytes(photo_set(3))
    project = _create(token_client, data)
    listed = token_client.get("/api/v1/projects/").json()["results"]
    assert [p["id"] for p in listed] == [project["id"]]
    assert token_client.delete(f"/api/v1/projects/{project['id']}/").status_code == 204
    token = private_token[0]
    token.refresh_from_db()
    assert token.credit == 10_000_000_000
    assert list(
        CreditLedgerEntry.objects.filter(token=token).values_list("kind", flat=True)
    ) == ["refund", "charge", "grant"]


def test_bad_input_is_a_400_with_field_reasons(token_client):
    r = token_client.post(
        "/api/v1/projects/",
        {"name": "x", "photos": 0, "filesize": 10, "parts": 1},
        format="json",
    )
    assert r.status_code == 400
    assert r.json()["fields"]["photos"]
    assert not Project.objects.exists()


def test_public_token_cannot_list_projects(public_token, settings):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {settings.OPENSCAN_PUBLIC_TOKEN}")
    r = client.get("/api/v1/projects/")
    assert r.status_code == 403
    assert "public token" in r.json()["error"]


def test_session_user_acts_with_their_token(make_token):
    user = get_user_model().objects.create_user(
        "ada", "ada@example.org", "pw-long-enough-1"
    )
    token, _ = make_token(user=user)
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.get("/api/v1/token/").json()["masked_key"] == token.masked_key
    body = {"name": "s.zip", "photos": 3, "filesize": 100, "parts": 1}
    refused = client.post("/api/v1/projects/", body, format="json")
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["error"]
    client.get(
        "/api/v1/token/"
    )  # no page sets the cookie yet: take a token the way a page would
    from django.middleware.csrf import _get_new_csrf_string

    secret = _get_new_csrf_string()
    client.cookies["csrftoken"] = secret
    accepted = client.post(
        "/api/v1/projects/", body, format="json", HTTP_X_CSRFTOKEN=secret
    )
    assert accepted.status_code == 201
    assert Project.objects.get().token == token


def test_ledger_endpoint_lists_movements(token_client):
    _create(token_client, zip_bytes(photo_set(3)))
    rows = token_client.get("/api/v1/token/ledger/").json()
    assert [r["kind"] for r in rows] == ["charge", "grant"]


def test_schema_and_docs_are_served_without_a_cdn(api_client):
    schema = api_client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/projects/{project_id}/parts/{part}/" in schema.content
    docs = api_client.get("/api/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "swagger-ui" in html
    assert "cdn" not in html.lower()
    assert "//unpkg" not in html


def test_a_retried_create_gets_the_same_project_and_one_charge(
    token_client, private_token
):
    # The project name is the retry key (the uploader sends no Idempotency-Key).
    data = zip_bytes(photo_set(3))
    first = _create(token_client, data)
    again = _create(token_client, data)
    assert again["id"] == first["id"]
    token = private_token[0]
    token.refresh_from_db()
    assert token.credit == 10_000_000_000 - len(data)


def test_project_list_is_paginated_with_a_constant_number_of_queries(
    token_client, private_token, django_assert_max_num_queries
):
    # given: projects in each state the list reads extra data for
    token = private_token[0]
    for i in range(3):
        _create(token_client, zip_bytes(photo_set(3)), name=f"set-{i}.zip")
    Project.objects.filter(name="set-1.zip").update(
        status=Project.Status.QUEUED, queued_at=timezone.now()
    )
    # when
    with django_assert_max_num_queries(8) as few:
        first = token_client.get("/api/v1/projects/?limit=2").json()
    for i in range(3, 9):
        Project.objects.create(
            token=token, name=f"more-{i}.zip", photos=3, filesize=10, parts=1
        )
    with django_assert_max_num_queries(len(few.captured_queries)):
        token_client.get("/api/v1/projects/?limit=9")
    # then
    assert first["count"] == 3
    assert [p["name"] for p in first["results"]] == ["set-2.zip", "set-1.zip"]
    assert first["results"][1]["queue_position"] == 0
    assert first["next"].endswith("limit=2&offset=2")
