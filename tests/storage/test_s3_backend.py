"""The S3 backend against a real S3-compatible server: moto in server mode on loopback.

Every byte goes over HTTP to moto through django-storages and boto3, exactly
as it would to AWS or MinIO; presigned URLs are used with plain ``requests``.
"""

import base64
import hashlib
import json
import urllib.parse

import pytest
import requests
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client
from django.utils import timezone
from storages.backends.s3 import S3Storage

from projects import links, storage
from projects.models import Project, UploadChunk
from projects.services import (
    project_create,
    project_delete,
    project_reset,
    project_start,
)
from tests.images import photo_set, split, zip_bytes
from tests.workers import input_prepare

pytestmark = pytest.mark.django_db


def _post_policy(fields: dict[str, str]) -> dict:
    """The decoded policy document of a presigned POST."""
    return json.loads(base64.b64decode(fields["policy"]))


def _wire(path: str, **params: object):
    return Client().get(path, params)


def _post_part(link: str, body: bytes):
    path = urllib.parse.urlsplit(link).path
    return Client().post(path, data=body, content_type="application/octet-stream")


def _create(token_client, data: bytes, parts: int, name: str = "vase.zip") -> dict:
    r = token_client.post(
        "/api/v1/projects/",
        {"name": name, "photos": 3, "filesize": len(data), "parts": parts},
        format="json",
    )
    assert r.status_code == 201, r.content
    return r.json()


def _patch(client, url: str, body: bytes, offset: int = 0):
    return client.generic(
        "PATCH",
        url,
        body,
        content_type="application/offset+octet-stream",
        HTTP_UPLOAD_OFFSET=str(offset),
    )


def _direct(token_client, project_id: str, part: int, method: str) -> dict:
    r = token_client.post(
        f"/api/v1/projects/{project_id}/parts/{part}/direct/",
        {"method": method},
        format="json",
    )
    assert r.status_code == 200, r.content
    return r.json()


def _send(target: dict, body: bytes) -> requests.Response:
    if target["encoding"] == "multipart":
        return requests.post(
            target["url"],
            data=target["fields"],
            files={"file": ("part.bin", body)},
            timeout=30,
        )
    return requests.request(
        target["method"],
        target["url"],
        data=body,
        headers=target["headers"],
        timeout=30,
    )


def test_the_s3_fixture_really_swaps_default_storage(s3):
    assert isinstance(default_storage, S3Storage)
    assert default_storage.bucket_name == s3.name
    assert storage.backend().kind == "s3"
    default_storage.save("probe/hello.txt", ContentFile(b"hello"))
    assert s3.read("probe/hello.txt") == b"hello"


def test_wire_upload_then_start_stores_the_input_zip_in_the_bucket(
    s3, settings, private_token, django_capture_on_commit_callbacks
):
    # given a 3-part zip sent to the wire ulinks, which stay paths on this server
    settings.OPENSCAN_PART_MAX_BYTES = 5_000
    data = zip_bytes(photo_set(3))
    parts = split(data, 5_000)
    token = private_token[1]
    created = _wire(
        "/createProject",
        token=token,
        project="s3.zip",
        photos=3,
        parts=len(parts),
        filesize=len(data),
    )
    assert created.status_code == 200, created.content
    ulinks = created.json()["ulink"]
    assert all(urllib.parse.urlsplit(link).path.startswith("/u/") for link in ulinks)
    assert all("amazonaws" not in link and s3.endpoint not in link for link in ulinks)
    for link, body in zip(ulinks, parts, strict=True):
        with django_capture_on_commit_callbacks(execute=True):
            assert _post_part(link, body).status_code == 200
    project = Project.objects.get(name="s3.zip")
    assert len(s3.keys(f"{project.storage_prefix}/upload/")) == len(parts)

    # when it starts
    with django_capture_on_commit_callbacks(execute=True):
        started = _wire("/startProject", token=token, project="s3.zip")

    # then the joined zip is in the bucket and the part objects are gone
    assert started.status_code == 200, started.content
    with django_capture_on_commit_callbacks(execute=True):
        project = input_prepare()  # the worker's first step
    assert project.status == Project.Status.PROCESSING
    assert project.input_path.startswith(f"{project.storage_prefix}/input-1-")
    assert s3.keys(project.storage_prefix) == [project.input_path]
    assert s3.read(project.input_path) == data
    with default_storage.open(project.input_path, "rb") as fh:  # what a worker reads
        assert hashlib.sha256(fh.read()).hexdigest() == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("method", ["PUT", "POST"])
def test_a_part_sent_with_a_presigned_url_is_found_at_start(
    s3, settings, token_client, method, django_capture_on_commit_callbacks
):
    # given a 2-part project: part 1 straight to the bucket, part 2 through the server
    data = zip_bytes(photo_set(3))
    half = len(data) // 2 + 1
    settings.OPENSCAN_PART_MAX_BYTES = half
    first, second = data[:half], data[half:]
    project = _create(token_client, data, parts=2)
    target = _direct(token_client, project["id"], 0, method)
    assert target["method"] == method
    assert target["max_size"] == half
    assert target["one_time"] is False
    assert s3.endpoint in target["url"]

    # when the client uploads part 1 to the bucket
    sent = _send(target, first)
    assert sent.status_code in (200, 204), sent.text
    key = f"projects/{project['id'].replace('-', '')}/direct/1/0000.bin"
    assert s3.read(key) == first
    with django_capture_on_commit_callbacks(execute=True):
        r = _patch(token_client, project["parts"][1]["upload_url"], second)
    assert r.status_code == 204

    # then start registers it, joins both parts and stores the zip
    with django_capture_on_commit_callbacks(execute=True):
        started = token_client.post(f"/api/v1/projects/{project['id']}/start/")
    assert started.status_code == 200, started.content
    assert started.json()["status"] == Project.Status.QUEUED
    with django_capture_on_commit_callbacks(execute=True):
        stored = input_prepare()  # the worker's first step
    assert s3.read(stored.input_path) == data
    assert s3.keys(stored.storage_prefix) == [
        stored.input_path
    ]  # parts deleted after start
    assert UploadChunk.objects.filter(project=stored).count() == 0


@pytest.mark.parametrize("method", ["PUT", "POST"])
def test_a_direct_upload_over_the_part_limit_is_refused_with_a_400_naming_the_part(
    s3, settings, token_client, method, django_capture_on_commit_callbacks
):
    # given a limit of 5,000 bytes per part
    settings.OPENSCAN_PART_MAX_BYTES = 5_000
    project = _create(token_client, b"x" * 9_001, parts=2)
    target = _direct(token_client, project["id"], 1, method)
    if method == "POST":
        policy = _post_policy(target["fields"])
        assert ["content-length-range", 1, 5_000] in policy["conditions"]

    # when part 2 is sent straight to the bucket with 5,001 bytes
    sent = _send(target, b"y" * 5_001)

    # then S3 refuses it (AWS enforces the POST policy) or, where the store took
    # it (a PUT; moto does not enforce content-length-range), start refuses it
    key = f"projects/{project['id'].replace('-', '')}/direct/1/0001.bin"
    if sent.ok:
        r = _patch(token_client, project["parts"][0]["upload_url"], b"x" * 4_000)
        assert r.status_code == 204
        with django_capture_on_commit_callbacks(execute=True):
            started = token_client.post(f"/api/v1/projects/{project['id']}/start/")
        assert started.status_code == 400
        assert "part 2 is 5001 bytes" in started.json()["error"]
        assert "at most 5000 bytes" in started.json()["error"]
        assert s3.keys(key) == []  # deleted, so the part can be sent again
    else:
        assert sent.status_code == 400
        assert "EntityTooLarge" in sent.text
    stored = Project.objects.get(pk=project["id"])
    assert stored.status == Project.Status.CREATED
    assert stored.input_path == ""
    assert UploadChunk.objects.filter(project=stored, part=1).count() == 0


def test_presigned_upload_urls_live_between_4_hours_and_7_days(s3, token_client):
    # given a project
    project = _create(token_client, b"x" * 100, parts=1)
    before = timezone.now()

    # when both kinds of presigned upload are asked for
    put = _direct(token_client, project["id"], 0, "PUT")
    post = _direct(token_client, project["id"], 0, "POST")

    # then the PUT URL's X-Amz-Expires and the POST policy's expiration are 4 hours
    expires = int(
        urllib.parse.parse_qs(urllib.parse.urlsplit(put["url"]).query)["X-Amz-Expires"][
            0
        ]
    )
    assert 14_400 <= expires <= 604_800
    assert expires == 14_400
    policy = _post_policy(post["fields"])
    expiration = timezone.datetime.fromisoformat(
        policy["expiration"].replace("Z", "+00:00")
    )
    seconds = (expiration - before).total_seconds()
    assert 14_400 - 5 <= seconds <= 604_800
    assert abs(seconds - 14_400) < 60


def test_direct_upload_is_refused_once_the_project_started_or_when_turned_off(
    s3, settings, token_client, private_token
):
    data = zip_bytes(photo_set(3))
    project = _create(token_client, data, parts=1)
    settings.OPENSCAN_S3_DIRECT_UPLOADS = False
    off = token_client.post(f"/api/v1/projects/{project['id']}/parts/0/direct/")
    assert off.status_code == 409
    assert off.json()["code"] == "direct_upload_unavailable"
    settings.OPENSCAN_S3_DIRECT_UPLOADS = True
    assert _send(_direct(token_client, project["id"], 0, "PUT"), data).ok
    assert (
        token_client.post(f"/api/v1/projects/{project['id']}/start/").status_code == 200
    )
    late = token_client.post(f"/api/v1/projects/{project['id']}/parts/0/direct/")
    assert late.status_code == 409
    assert late.json()["code"] == "project_started"


def test_a_part_sent_through_the_server_after_a_direct_upload_wins(
    s3, settings, token_client, django_capture_on_commit_callbacks
):
    data = zip_bytes(photo_set(3))
    project = _create(token_client, data, parts=1)
    assert _send(_direct(token_client, project["id"], 0, "PUT"), b"stale bytes").ok
    with django_capture_on_commit_callbacks(execute=True):
        r = _patch(token_client, project["parts"][0]["upload_url"], data)
    assert r.status_code == 204
    assert s3.keys(f"projects/{project['id'].replace('-', '')}/direct/") == []
    with django_capture_on_commit_callbacks(execute=True):
        assert (
            token_client.post(f"/api/v1/projects/{project['id']}/start/").status_code
            == 200
        )
        assert s3.read(input_prepare().input_path) == data


def _finished_project(token) -> tuple[Project, bytes]:
    result = zip_bytes({"model.obj": b"v 0 0 0\n"})
    project = project_create(
        token=token, name="done vase.zip", photos=3, parts=1, filesize=100
    )
    prefix = f"{project.storage_prefix}/result-{project.upload_generation}"
    default_storage.save(f"{prefix}/result.zip", ContentFile(result))
    Project.objects.filter(pk=project.pk).update(
        status=Project.Status.DONE,
        result_path=prefix,
        input_path=default_storage.save(
            f"{project.storage_prefix}/input-1.zip", ContentFile(b"zip")
        ),
        progress={"files": {"result.zip": len(result)}},
    )
    project.refresh_from_db()
    return project, result


def test_download_redirects_to_a_presigned_get_that_returns_the_bytes(
    s3, private_token, token_client
):
    # given a finished project whose result is in the bucket
    project, result = _finished_project(private_token[0])
    path = links.download_path(
        project_id=project.id,
        generation=project.upload_generation,
        filename="result.zip",
    )

    # when the dlink is fetched (with the dl=1 clients add)
    r = Client().get(path, {"dl": "1"})

    # then it is a 302 to a presigned GET on the bucket that serves the file as a
    # download
    assert r.status_code == 302
    location = r.headers["Location"]
    assert location.startswith(
        f"{s3.endpoint}/{s3.name}/{project.storage_prefix}/result-1/result.zip?"
    )
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert int(query["X-Amz-Expires"][0]) == 3600
    got = requests.get(location, timeout=30)
    assert got.status_code == 200
    assert got.content == result
    assert (
        got.headers["Content-Disposition"]
        == 'attachment; filename="done vase-result.zip"'
    )

    # and requests.get on the dlink (what OpenScan3 does) follows it to the bytes
    detail = token_client.get(f"/api/v1/projects/{project.id}/").json()
    assert detail["result_url"].endswith(path)
    # HEAD stays here (a presigned GET does not answer HEAD)
    head = Client().head(path)
    assert head.status_code == 200
    assert head["Content-Length"] == str(len(result))
    assert head["Content-Disposition"] == 'attachment; filename="done vase-result.zip"'


def test_download_streams_from_here_when_redirects_are_off(s3, settings, private_token):
    settings.OPENSCAN_DOWNLOAD_REDIRECT = False
    project, result = _finished_project(private_token[0])
    path = links.download_path(
        project_id=project.id,
        generation=project.upload_generation,
        filename="result.zip",
    )
    r = Client().get(path)
    assert r.status_code == 200
    assert b"".join(r.streaming_content) == result
    assert Client().get(path.replace("result.zip", "other.zip")).status_code == 404


def test_reset_and_delete_leave_no_objects_under_the_project_prefix(
    s3, settings, private_token, token_client, django_capture_on_commit_callbacks
):
    # given a started project, re-uploaded after a reset, with a direct part and a
    # result
    data = zip_bytes(photo_set(3))
    token = private_token[0]
    project = project_create(
        token=token, name="gone.zip", photos=3, parts=1, filesize=len(data)
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert _send(_direct(token_client, str(project.id), 0, "PUT"), data).ok
        project_start(project=project)
        project = input_prepare()
    assert s3.keys(project.storage_prefix) == [project.input_path]
    Project.objects.filter(pk=project.pk).update(status=Project.Status.DONE)
    project.refresh_from_db()
    default_storage.save(
        f"{project.storage_prefix}/result-1/result.zip", ContentFile(b"r")
    )
    Project.objects.filter(pk=project.pk).update(
        result_path=f"{project.storage_prefix}/result-1"
    )
    project.refresh_from_db()

    # when it is reset
    with django_capture_on_commit_callbacks(execute=True):
        project = project_reset(project=project)

    # then nothing is left under its prefix
    assert s3.keys(project.storage_prefix) == []

    # given parts sent again, one direct (never registered) and one through the server
    settings.OPENSCAN_PART_MAX_BYTES = len(data) - 100  # two parts are real
    project = project_create(
        token=token, name="gone.zip", photos=3, parts=2, filesize=len(data)
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert _send(_direct(token_client, str(project.id), 0, "PUT"), data[:100]).ok
        link = links.upload_path(
            project_id=project.id, generation=project.upload_generation, part=1
        )
        assert (
            Client()
            .post(link, data=data[100:], content_type="application/octet-stream")
            .status_code
            == 200
        )
    prefix = project.storage_prefix
    assert len(s3.keys(prefix)) == 2

    # when it is deleted
    with django_capture_on_commit_callbacks(execute=True):
        project_delete(project=project)

    # then the bucket holds nothing for it
    assert s3.keys(prefix) == []
    assert s3.client.list_objects_v2(Bucket=s3.name, Prefix=prefix)["KeyCount"] == 0
