"""The Dropbox backend through the real dropbox SDK,
against an HTTP stand-in on loopback.

What these tests prove is limited to the stand-in (tests/storage/dropbox_standin.py),
which follows Dropbox's documented JSON; see the README's storage section.
"""

import hashlib
import os
import re
import urllib.parse

import pytest
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client

from projects import links, storage
from projects.models import Project, UploadChunk
from projects.services import (
    jobs,
    project_create,
    project_delete,
    project_reset,
    project_start,
)
from tests.images import photo_set, split, zip_bytes
from tests.storage.dropbox_standin import API_HOST, CONTENT_HOST, reference_content_hash
from tests.workers import input_prepare

pytestmark = pytest.mark.django_db
ULINK_CHARS = re.compile(r"\A[A-Za-z0-9/_.:-]+\Z")
ROOT = "/openscan-test"


# --- the content hash ----------------------------------------------------------


def _content_hash(data: bytes) -> str:
    hasher = storage.DropboxContentHasher()
    hasher.update(data)
    return hasher.hexdigest()


def test_content_hash_of_nothing_is_the_sha256_of_no_blocks():
    assert _content_hash(b"") == hashlib.sha256(b"").hexdigest()


@pytest.mark.parametrize(
    "size",
    [1, 4 * 1024 * 1024 - 1, 4 * 1024 * 1024, 4 * 1024 * 1024 + 1, 9 * 1024 * 1024 + 7],
)
def test_content_hash_is_sha256_of_the_4_mib_block_digests(size):
    data = os.urandom(size)
    blocks = [data[i : i + 4 * 1024 * 1024] for i in range(0, size, 4 * 1024 * 1024)]
    expected = hashlib.sha256(
        b"".join(hashlib.sha256(b).digest() for b in blocks)
    ).hexdigest()
    assert _content_hash(data) == expected == reference_content_hash(data)


def test_content_hash_does_not_depend_on_how_the_bytes_are_fed():
    data = os.urandom(9 * 1024 * 1024 + 123)
    hasher = storage.DropboxContentHasher()
    pos = 0
    for step in [1, 1000, 4 * 1024 * 1024 + 5, 3, 1 << 20, 7 * 1024 * 1024]:
        hasher.update(data[pos : pos + step])
        pos += step
    hasher.update(data[pos:])
    assert hasher.hexdigest() == _content_hash(data)


# --- the backend ------------------------------------------------------------------


def test_the_backend_talks_to_the_stand_in_with_a_refreshed_token(dbx):
    assert storage.backend().kind == "dropbox"
    default_storage.save("probe/a.txt", ContentFile(b"hello"))
    assert dbx.read(f"{ROOT}/probe/a.txt") == b"hello"
    assert (API_HOST, "/oauth2/token") in dbx.calls
    with default_storage.open("probe/a.txt") as fh:
        assert fh.read() == b"hello"
    assert default_storage.size("probe/a.txt") == 5
    default_storage.delete("probe/a.txt")
    default_storage.delete(
        "probe/a.txt"
    )  # a second delete is quiet (clean-up may run twice)
    with pytest.raises(FileNotFoundError):
        default_storage.listdir("nowhere")


def test_large_files_go_up_in_an_upload_session_and_come_back_whole(dbx):
    data = os.urandom(9 * 1024 * 1024 + 5)
    default_storage.save("probe/big.bin", ContentFile(data))
    assert (CONTENT_HOST, "/2/files/upload_session/finish") in dbx.calls
    with default_storage.open("probe/big.bin") as fh:
        assert hashlib.sha256(fh.read()).digest() == hashlib.sha256(data).digest()


def test_listings_follow_has_more(dbx):
    dbx.page_size = 2
    for i in range(5):
        default_storage.save(f"many/{i}.txt", ContentFile(b"x"))
    assert sorted(default_storage.listdir("many")[1]) == [f"{i}.txt" for i in range(5)]


# --- uploads through the server (direct links off, the default) ----------------------


def test_wire_parts_stream_through_the_server_and_are_checked_by_content_hash_at_start(
    dbx, settings, private_token, django_capture_on_commit_callbacks
):
    # given a 2-part zip sent to the wire ulinks (paths on this server: direct links are
    # off)
    assert settings.OPENSCAN_DROPBOX_DIRECT_LINKS is False
    data = zip_bytes(photo_set(3))
    half = len(data) // 2 + 1
    settings.OPENSCAN_PART_MAX_BYTES = half
    parts = split(data, half)
    token = private_token[1]
    r = Client().get(
        "/createProject",
        {
            "token": token,
            "project": "dbx.zip",
            "photos": 3,
            "parts": 2,
            "filesize": len(data),
        },
    )
    ulinks = r.json()["ulink"]
    assert all(urllib.parse.urlsplit(u).path.startswith("/u/") for u in ulinks)
    for link, body in zip(ulinks, parts, strict=True):
        with django_capture_on_commit_callbacks(execute=True):
            assert (
                Client()
                .post(
                    urllib.parse.urlsplit(link).path,
                    data=body,
                    content_type="application/octet-stream",
                )
                .status_code
                == 200
            )
    project = Project.objects.get(name="dbx.zip")
    chunk_paths = [
        f"{ROOT}/{c.storage_name}" for c in UploadChunk.objects.filter(project=project)
    ]
    calls_before = len(dbx.calls)

    # when it starts
    with django_capture_on_commit_callbacks(execute=True):
        started = Client().get("/startProject", {"token": token, "project": "dbx.zip"})

    # then every part's content hash was asked for, and the zip is on Dropbox
    assert started.status_code == 200, started.content
    with django_capture_on_commit_callbacks(execute=True):
        project = input_prepare()  # the worker's first step
    assert dbx.read(f"{ROOT}/{project.input_path}") == data
    assert dbx.calls[calls_before:].count((API_HOST, "/2/files/get_metadata")) >= len(
        chunk_paths
    )
    assert dbx.paths_under(f"{ROOT}/{project.storage_prefix}") == [
        f"{ROOT}/{project.input_path}"
    ]


def test_a_part_whose_dropbox_content_hash_differs_is_refused_with_its_number(
    dbx, private_token, django_capture_on_commit_callbacks
):
    # given an uploaded part that Dropbox reports with another content hash
    data = zip_bytes(photo_set(3))
    project = project_create(
        token=private_token[0], name="bad.zip", photos=3, parts=1, filesize=len(data)
    )
    link = links.upload_path(
        project_id=project.id, generation=project.upload_generation, part=0
    )
    assert (
        Client()
        .post(link, data=data, content_type="application/octet-stream")
        .status_code
        == 200
    )
    chunk = UploadChunk.objects.get(project=project)
    dbx.files[f"{ROOT}/{chunk.storage_name}".lower()].reported_hash = "0" * 64

    # when it starts
    with django_capture_on_commit_callbacks(execute=True):
        started = Client().get(
            "/startProject", {"token": private_token[1], "project": "bad.zip"}
        )

    # then the worker fails it with a reason naming the part, and the part is dropped
    assert started.status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        jobs.job_run_next()
    project.refresh_from_db()
    assert project.status == Project.Status.FAILED
    assert "Part 1 of 1" in project.error
    assert "content hash" in project.error
    assert UploadChunk.objects.filter(project=project).count() == 0


# --- Dropbox temporary upload links (OPENSCAN_DROPBOX_DIRECT_LINKS) -------------------


@pytest.fixture
def direct_links(dbx, settings):
    settings.OPENSCAN_DROPBOX_DIRECT_LINKS = True
    return dbx


def test_with_direct_links_parts_are_capped_at_150_mib(
    direct_links, settings, api_client
):
    assert (
        storage.backend().part_max_bytes()
        == 157_286_400
        < settings.OPENSCAN_PART_MAX_BYTES
    )
    assert api_client.get("/api/v1/").json()["max_part_size"] == 157_286_400
    settings.OPENSCAN_DROPBOX_DIRECT_LINKS = False
    assert storage.backend().part_max_bytes() == 200_000_000


def test_the_firmware_posts_raw_bytes_to_one_time_dropbox_links_and_start_checks_them(
    direct_links, settings, private_token, django_capture_on_commit_callbacks
):
    # given Dropbox upload links for a 2-part project
    dbx = direct_links
    data = zip_bytes(photo_set(3))
    half = len(data) // 2 + 1
    settings.OPENSCAN_PART_MAX_BYTES = half
    parts = split(data, half)
    project = project_create(
        token=private_token[0], name="fw.zip", photos=3, parts=2, filesize=len(data)
    )
    ulinks = [
        storage.backend().wire_upload_link(project=project, part=i) for i in range(2)
    ]

    # then they are Dropbox links the firmware can paste into a shell, asked for with
    # the longest duration and a fixed per-part path
    assert all(
        u.startswith(f"https://{CONTENT_HOST}/apitul/1/") and ULINK_CHARS.match(u)
        for u in ulinks
    )
    assert [link.duration for link in dbx.upload_links.values()] == [14_400.0, 14_400.0]
    assert sorted(link.path for link in dbx.upload_links.values()) == [
        f"{ROOT}/{project.storage_prefix}/direct/1/0000.bin",
        f"{ROOT}/{project.storage_prefix}/direct/1/0001.bin",
    ]
    assert {link.mode for link in dbx.upload_links.values()} == {"overwrite"}

    # when the firmware POSTs each part raw (octet-stream) to its link
    client = dbx.session()
    for link, body in zip(ulinks, parts, strict=True):
        r = client.post(
            link,
            data=body,
            headers={"Content-Type": "application/octet-stream"},
            timeout=30,
        )
        assert r.status_code == 200
        assert r.json() == {"content-hash": _content_hash(body)}
    # a one-time link cannot be used twice
    again = client.post(
        ulinks[0],
        data=parts[0],
        headers={"Content-Type": "application/octet-stream"},
        timeout=30,
    )
    assert again.status_code == 410

    # and the project starts
    with django_capture_on_commit_callbacks(execute=True):
        assert project_start(project=project).status == Project.Status.QUEUED
        started = input_prepare()
    assert dbx.read(f"{ROOT}/{started.input_path}") == data
    assert dbx.paths_under(f"{ROOT}/{project.storage_prefix}") == [
        f"{ROOT}/{started.input_path}"
    ]


def test_dropbox_refuses_a_form_content_type_on_its_upload_link(
    direct_links, private_token
):
    """curl --data-binary sends x-www-form-urlencoded; Dropbox documents 400 for a bad
    Content-Type."""
    project = project_create(
        token=private_token[0], name="curl.zip", photos=3, parts=1, filesize=10
    )
    link = storage.backend().wire_upload_link(project=project, part=0)
    r = direct_links.session().post(
        link,
        data=b"0123456789",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=30,
    )
    assert r.status_code == 400


def test_rest_direct_link_is_one_time_and_raw_and_oversize_parts_fail_at_start(
    direct_links, settings, token_client, django_capture_on_commit_callbacks
):
    # given parts capped at 5,000 bytes for the test (150 MiB in production)
    settings.OPENSCAN_DROPBOX_PART_MAX_BYTES = 5_000
    r = token_client.post(
        "/api/v1/projects/",
        {"name": "big.zip", "photos": 3, "filesize": 9_000, "parts": 2},
        format="json",
    )
    project = r.json()
    target = token_client.post(
        f"/api/v1/projects/{project['id']}/parts/1/direct/"
    ).json()
    assert target["encoding"] == "raw"
    assert target["one_time"] is True
    assert target["max_size"] == 5_000
    assert target["headers"] == {"Content-Type": "application/octet-stream"}

    # when 5,001 bytes go to the link (the stand-in does not model Dropbox's own 150 MiB
    # refusal)
    sent = direct_links.session().post(
        target["url"], data=b"y" * 5_001, headers=target["headers"], timeout=30
    )
    assert sent.status_code == 200

    # then start refuses it with a 400 naming the part and the Dropbox limit
    with django_capture_on_commit_callbacks(execute=True):
        started = token_client.post(f"/api/v1/projects/{project['id']}/start/")
    assert started.status_code == 400
    error = started.json()["error"]
    assert "part 2 is 5001 bytes" in error
    assert "Dropbox" in error
    assert (
        direct_links.paths_under(
            f"{ROOT}/projects/{project['id'].replace('-', '')}/direct"
        )
        == []
    )


# --- downloads and clean-up
# --------------------------------------------------------------


def _finished(token) -> tuple[Project, bytes]:
    result = zip_bytes({"model.obj": b"v 0 0 0\n"})
    project = project_create(
        token=token, name="shared.zip", photos=3, parts=1, filesize=100
    )
    prefix = f"{project.storage_prefix}/result-1"
    default_storage.save(f"{prefix}/result.zip", ContentFile(result))
    Project.objects.filter(pk=project.pk).update(
        status=Project.Status.DONE,
        result_path=prefix,
        progress={"files": {"result.zip": len(result)}},
    )
    project.refresh_from_db()
    return project, result


def test_the_dlink_redirects_to_a_dropbox_shared_link_that_downloads(
    dbx, private_token
):
    # given a finished project on Dropbox
    project, result = _finished(private_token[0])
    path = links.download_path(
        project_id=project.id,
        generation=project.upload_generation,
        filename="result.zip",
    )

    # when the dlink is fetched twice, once after the cache is gone
    first = Client().get(path)
    cache.clear()
    second = Client().get(path, {"dl": "1"})

    # then both redirect to the same shared link, forced to download, which serves the
    # zip
    assert first.status_code == second.status_code == 302
    assert first["Location"] == second["Location"]
    assert first["Location"].startswith("https://www.dropbox.com/scl/fi/")
    assert "dl=1" in first["Location"]
    assert "dl=0" not in first["Location"]
    assert len(dbx.shared_links) == 1
    got = dbx.session().get(first["Location"], timeout=30)
    assert got.status_code == 200
    assert got.content == result


def test_reset_and_delete_remove_the_project_files_from_dropbox(
    dbx, settings, private_token, django_capture_on_commit_callbacks
):
    settings.OPENSCAN_DROPBOX_DIRECT_LINKS = True
    data = zip_bytes(photo_set(3))
    token = private_token[0]
    project = project_create(
        token=token, name="gone.zip", photos=3, parts=1, filesize=len(data)
    )
    link = storage.backend().wire_upload_link(project=project, part=0)
    assert (
        dbx.session()
        .post(
            link,
            data=data,
            headers={"Content-Type": "application/octet-stream"},
            timeout=30,
        )
        .ok
    )
    with django_capture_on_commit_callbacks(execute=True):
        project_start(project=project)
        project = input_prepare()
    prefix = f"{ROOT}/{project.storage_prefix}"
    assert dbx.paths_under(prefix) == [f"{ROOT}/{project.input_path}"]

    # (a processing project cannot be reset; this one has finished)
    Project.objects.filter(pk=project.pk).update(status=Project.Status.DONE)
    with django_capture_on_commit_callbacks(execute=True):
        project = project_reset(project=project)
    assert dbx.paths_under(prefix) == []

    project = project_create(
        token=token, name="gone.zip", photos=3, parts=1, filesize=len(data)
    )
    link = storage.backend().wire_upload_link(project=project, part=0)
    assert (
        dbx.session()
        .post(
            link,
            data=data,
            headers={"Content-Type": "application/octet-stream"},
            timeout=30,
        )
        .ok
    )
    assert len(dbx.paths_under(prefix)) == 1
    with django_capture_on_commit_callbacks(execute=True):
        project_delete(project=project)
    assert dbx.paths_under(prefix) == []
