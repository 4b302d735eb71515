"""A firmware-like client streams chunked parts through the
whole trip on the real server.

create → three parts POSTed with Transfer-Encoding: chunked → start → poll →
download, against gunicorn (gunicorn.conf.py) on PostgreSQL, with the real
engine in a worker thread standing in for the qcluster.
"""

import contextlib
import io
import time
import zipfile

import pytest
import requests

from projects.models import Project
from tests.images import split
from tests.projects.gunicorn_live import start_gunicorn
from tests.workers import worker_thread

pytestmark = [
    pytest.mark.engine,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
]


def _streamed(part: bytes):
    for i in range(0, len(part), 64 * 1024):
        yield part[i : i + 64 * 1024]


def test_chunked_client_trip_create_upload_start_poll_download(
    private_token, turntable_zip, tmp_path
):
    part_size = len(turntable_zip) // 3 + 1
    server = start_gunicorn(tmp_path, OPENSCAN_PART_MAX_BYTES=str(part_size))
    live = next(server)
    with contextlib.closing(server), worker_thread(join_timeout=900):
        key, name = private_token[1], "1706700000000-turntable.zip"
        parts = split(turntable_zip, part_size)
        status, created = live.get(
            "/createProject",
            {
                "token": key,
                "project": name,
                "photos": 24,
                "parts": len(parts),
                "filesize": len(turntable_zip),
            },
        )
        assert status == 200
        assert len(created["ulink"]) == 3
        for link, part in zip(created["ulink"], parts, strict=True):
            sent = requests.post(link, data=_streamed(part), timeout=120)
            assert sent.request.headers["Transfer-Encoding"] == "chunked"
            assert sent.status_code == 200
            assert sent.json()["size"] == len(part)
        status, started = live.get("/startProject", {"token": key, "project": name})
        assert (status, started) == (200, {"status": "started"})

        seen = []
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            status, info = live.get("/getProjectInfo", {"token": key, "project": name})
            assert status == 200
            seen.append(info["status"])
            if info["status"] in {"processing done", "processing failed"}:
                break
            time.sleep(2)
        assert info["status"] == "processing done", info
        result = requests.get(info["dlink"] + "?dl=1", timeout=120)
        assert result.status_code == 200
        with zipfile.ZipFile(io.BytesIO(result.content)) as zf:
            names = set(zf.namelist())
        assert {"model.glb", "model.obj", "cameras.json"} <= names
        assert Project.objects.get(name=name).image_count == 24
        assert "started" in seen or "processing started" in seen
