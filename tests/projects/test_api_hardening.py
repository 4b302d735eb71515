"""Requests that used to end in a 500 answer 4xx; the REST upload throttle works."""

import threading
from collections import Counter

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection, connections
from django.test import Client
from rest_framework.test import APIClient

from projects.models import Project, UploadChunk
from projects.services import project_create
from projects.services.uploads import parts_join
from tests.images import photo_set, zip_bytes
from tests.projects.conftest import patch_part as _patch

pytestmark = pytest.mark.django_db


def test_deeply_nested_json_is_a_400_not_a_recursion_error(token_client) -> None:
    body = "[" * 100_000 + "]" * 100_000

    response = token_client.post(
        "/api/v1/projects/", body, content_type="application/json"
    )

    assert response.status_code == 400
    assert response.json()["error"] == "JSON nested too deeply."


def test_credit_desk_without_change_permission_is_403(
    client: Client, private_token
) -> None:
    staff = get_user_model().objects.create_user(
        "clerk", "clerk@example.org", "pw-long-enough-1", is_staff=True
    )
    client.force_login(staff)

    response = client.get(f"/admin/tokens/token/{private_token[0].pk}/adjust/")

    assert response.status_code == 403


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_deletes_of_one_project_answer_204_once_and_404_otherwise(
    private_token,
) -> None:
    assert connection.vendor == "postgresql"
    token, key = private_token
    project = project_create(
        token=token, name="twice.zip", photos=3, parts=1, filesize=1000
    )
    count = 8
    barrier = threading.Barrier(count)
    outcomes: Counter = Counter()
    lock = threading.Lock()

    def delete() -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        try:
            barrier.wait()
            status = client.delete(f"/api/v1/projects/{project.pk}/").status_code
        except Exception as exc:  # a raised error is the finding
            status = repr(exc)
        finally:
            connections.close_all()
        with lock:
            outcomes[status] += 1

    threads = [threading.Thread(target=delete) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    assert outcomes == Counter({204: 1, 404: count - 1})
    token.refresh_from_db()
    assert token.credit == 10_000_000_000  # refunded once


def _project(client: APIClient, data: bytes) -> str:
    r = client.post(
        "/api/v1/projects/",
        {"name": "set.zip", "photos": 3, "filesize": len(data), "parts": 1},
        format="json",
    )
    assert r.status_code == 201
    return r.json()["id"]


def test_upload_throttle_answers_429_with_retry_after_past_the_rate(
    token_client, make_token
) -> None:
    cache.clear()
    url = f"/api/v1/projects/{_project(token_client, b'x' * 10)}/parts/0/"

    statuses = [token_client.get(url).status_code for _ in range(300)]  # 300/min
    refused = _patch(token_client, url, 0, b"x")

    assert set(statuses) == {200}
    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= 60
    # another token has its own allowance
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token()[1]}")
    other_url = f"/api/v1/projects/{_project(other, b'y' * 10)}/parts/0/"
    assert other.get(other_url).status_code == 200


def test_200_one_byte_patches_are_stored_as_one_piece_and_the_zip_intact(
    token_client, tmp_path
) -> None:
    cache.clear()
    data = zip_bytes(photo_set(3))
    project_id = _project(token_client, data)
    url = f"/api/v1/projects/{project_id}/parts/0/"

    for i in range(200):
        assert _patch(token_client, url, i, data[i : i + 1]).status_code == 204
    assert _patch(token_client, url, 200, data[200:]).status_code == 204

    project = Project.objects.get(pk=project_id)
    assert UploadChunk.objects.filter(project=project).count() == 1
    parts_join(project=project, dest=tmp_path / "joined.zip")
    assert (tmp_path / "joined.zip").read_bytes() == data
    assert token_client.post(f"/api/v1/projects/{project_id}/start/").status_code == 200


def test_stored_pieces_stay_bounded_whatever_the_patch_sizes(
    token_client, settings, tmp_path
) -> None:
    cache.clear()
    settings.OPENSCAN_CHUNK_COALESCE_BYTES = 1000
    data = bytes(range(256)) * 40  # 10,240 bytes
    project = Project.objects.get(pk=_project(token_client, data))
    url = f"/api/v1/projects/{project.pk}/parts/0/"
    sizes = [1, 700, 1, 1, 1200, 3, 999, 1, 1, 1, 2500, 1] * 3
    offset = 0
    for size in sizes:
        chunk = data[offset : offset + size]
        if not chunk:
            break
        response = _patch(token_client, url, offset, chunk)
        assert response.status_code == 204
        offset = int(response["Upload-Offset"])

    pieces = UploadChunk.objects.filter(project=project).count()
    assert offset == len(data)
    assert pieces <= 2 * len(data) // 1000 + 1
    assert pieces < len([s for s in sizes if s])  # some were merged
    parts_join(project=project, dest=tmp_path / "joined.bin")
    assert (tmp_path / "joined.bin").read_bytes() == data
