"""Processing with the real engine: a started project becomes a
textured model, or fails in words."""

import io
import json
import zipfile
from pathlib import Path

import pytest
import requests
from django.core.files.storage import default_storage

from projects.models import Project
from projects.services import jobs
from tests.images import jpeg_bytes, zip_bytes
from tests.projects.conftest import queue_project
from tests.workers import worker_thread
from tokens.models import CreditLedgerEntry

pytestmark = [pytest.mark.engine, pytest.mark.django_db(transaction=True)]
GB = 1_000_000_000


def test_real_engine_turns_a_generated_turntable_into_a_textured_model(
    private_token, turntable_zip, live_server
):
    token, key = private_token
    project = queue_project(token, turntable_zip)

    processed = jobs.job_run_next()

    project.refresh_from_db()
    assert processed.pk == project.pk
    assert project.status == "done", project.error
    stats = project.progress["stats"]
    assert stats["images_registered"] == stats["images_total"] == 24
    assert stats["faces"] > 1000
    files = project.progress["files"]
    for name in (
        "result.zip",
        "model.glb",
        "model.obj",
        "model.mtl",
        "points.ply",
        "cameras.json",
        "report.json",
    ):
        assert files.get(name, 0) > 0, name
        assert default_storage.exists(f"{project.result_path}/{name}")
    # The wire client's view: a dlink that downloads a zip with safe names and an .obj
    # inside.
    info = requests.get(
        live_server.url + "/getProjectInfo",
        params={"token": key, "project": project.name},
        auth=("openscan", "free"),
        timeout=30,
    ).json()
    assert info["status"] == "processing done"
    assert info["dlink"]
    body = requests.get(info["dlink"], params={"dl": "1"}, timeout=60)
    assert body.status_code == 200
    with zipfile.ZipFile(io.BytesIO(body.content)) as zf:
        names = zf.namelist()
    assert "model.obj" in names
    assert "model.glb" in names
    assert all(not n.startswith("/") and ".." not in n.split("/") for n in names)
    with default_storage.open(f"{project.result_path}/cameras.json") as fh:
        cameras = json.load(fh)
    assert len(cameras["cameras"] if isinstance(cameras, dict) else cameras) == 24
    token.refresh_from_db()
    assert token.credit == 10 * GB - len(
        turntable_zip
    )  # charged once, kept: a model was delivered


def test_photos_that_cannot_be_placed_fail_in_words_with_a_refund(private_token):
    token, _ = private_token
    noise = zip_bytes(
        {f"IMG_{i:03d}.jpg": jpeg_bytes(320, 240, seed=100 + i) for i in range(12)}
    )
    project = queue_project(token, noise, name="noise.zip", photos=12)

    jobs.job_run_next()

    project.refresh_from_db()
    token.refresh_from_db()
    assert project.status == "failed"
    assert project.error_code in {
        "too_few_registered",
        "unreadable_images",
        "no_images",
    }
    assert "photos" in project.error
    assert len(project.error) > 30
    assert token.credit == 10 * GB
    assert (
        CreditLedgerEntry.objects.filter(
            token=token, kind="refund", project_ref=str(project.pk)
        ).count()
        == 1
    )


@pytest.mark.parametrize(
    ("setting", "value", "code", "words"),
    [
        ("OPENSCAN_JOB_TIMEOUT_SECONDS", 3, "time_limit", "time limit"),
        ("OPENSCAN_JOB_MEMORY_LIMIT_MB", 150, "out_of_memory", "more memory"),
    ],
)
def test_a_job_over_its_limit_fails_in_words(
    private_token, turntable_zip, settings, setting, value, code, words
):
    setattr(settings, setting, value)
    token, _ = private_token
    project = queue_project(token, turntable_zip, name="heavy.zip")

    jobs.job_run_next()

    project.refresh_from_db()
    assert project.status == "failed"
    assert project.error_code == code
    assert words in project.error.lower()
    assert Path(
        project.storage_prefix
    ).name  # the row stays for the ledger and the page


def test_cancelling_a_running_job_stops_the_engine(private_token, turntable_zip):
    import threading
    import time

    token, _ = private_token
    project = queue_project(token, turntable_zip, name="cancel.zip")
    from django.db import connections

    def run() -> None:
        try:
            jobs.job_run_next()
        finally:
            connections.close_all()

    runner = threading.Thread(target=run)
    runner.start()
    for _ in range(200):
        project.refresh_from_db()
        if project.status == "processing":
            break
        time.sleep(0.1)
    from projects.services import project_cancel

    project_cancel(project=project)
    started = time.monotonic()
    runner.join(60)
    project.refresh_from_db()
    assert not runner.is_alive()
    assert time.monotonic() - started < 30
    assert project.status == "cancelled"
    assert not project.result_path


def test_openscan_upload_full_trip_against_the_live_portal(
    private_token, turntable_zip, live_server, tmp_path
):
    """The real CLI: validate, tag, upload, wait for the real
    engine, download and unpack."""

    from openscan_upload import cli

    folder = tmp_path / "scan"
    folder.mkdir()
    with zipfile.ZipFile(io.BytesIO(turntable_zip)) as zf:
        zf.extractall(folder)
    with worker_thread(join_timeout=120):
        code = cli.main(
            [
                "upload",
                str(folder),
                "--server",
                live_server.url,
                "--token",
                private_token[1],
                "--min-pixels",
                "0",
                "--wait",
                "--download",
                str(tmp_path / "out"),
                "--quiet",
            ]
        )
    assert code == 0
    (project,) = Project.objects.all()
    assert project.status == "done"
    unpacked = next(p for p in (tmp_path / "out").iterdir() if p.is_dir())
    assert {"model.glb", "model.obj", "model.mtl", "cameras.json"} <= {
        p.name for p in unpacked.iterdir()
    }
    assert (
        CreditLedgerEntry.objects.filter(token=private_token[0], kind="charge").count()
        == 1
    )


def test_manage_py_reconstruct_runs_the_pipeline_locally(tmp_path, capsys):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    folder = tmp_path / "noise"
    folder.mkdir()
    for i in range(6):
        (folder / f"IMG_{i}.jpg").write_bytes(jpeg_bytes(320, 240, seed=300 + i))
    with pytest.raises(CommandError, match="reconstruction failed"):
        call_command(
            "reconstruct",
            str(folder),
            "--out",
            str(tmp_path / "out"),
            "--preset",
            "fast",
        )
    assert "FAILED (" in capsys.readouterr().err
