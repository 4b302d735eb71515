"""`openscan-upload reprocess` against the real portal: no upload, one more charge."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.db import connections
from openscan_upload import cli
from openscan_upload.state import STATE_FILE_NAME, load_state

from projects.models import Project
from projects.services import jobs
from tests.uploader.test_uploader_live import (  # noqa: F401 - fixtures
    charges,
    proxy,
    token,
    upload,
)
from tests.workers import input_prepare

pytestmark = pytest.mark.django_db(transaction=True)


def reprocess(proxy, key: str, ref: str, *extra: str) -> int:  # noqa: F811
    return cli.main(
        [
            "reprocess",
            ref,
            "--server",
            proxy.url,
            "--token",
            key,
            "--poll-interval",
            "0.05",
            *extra,
        ]
    )


def _failed_upload(proxy, token, folder: Path) -> Project:  # noqa: F811
    """Uploaded by the CLI, joined and checked by the worker, then failed."""
    assert upload(proxy, token[1], folder) == cli.EXIT_OK
    project = input_prepare()
    jobs._finish_failed(project, code="engine_error", message="gave up")
    project.refresh_from_db()
    assert project.input_path
    return project


def test_reprocess_by_name_queues_the_stored_photos_with_another_preset(
    proxy,  # noqa: F811
    token,  # noqa: F811
    photo_set,
    capsys,
) -> None:
    project = _failed_upload(proxy, token, photo_set(4))
    patches = len(proxy.paths("PATCH"))

    code = reprocess(
        proxy, token[1], project.name.removesuffix(".zip"), "--preset", "quality"
    )

    assert code == cli.EXIT_OK
    project.refresh_from_db()
    assert (project.status, project.preset) == ("queued", "quality")
    assert len(proxy.paths("PATCH")) == patches  # nothing uploaded again
    assert proxy.paths("POST")[-1] == f"/api/v1/projects/{project.id}/reprocess/"
    assert charges(token[0]) == 2  # the failed run was refunded, this one charged
    assert "queued again with the quality preset" in capsys.readouterr().out


def test_reprocess_folder_wait_follows_to_the_end_and_says_what_failed(
    proxy,  # noqa: F811
    token,  # noqa: F811
    photo_set,
    capsys,
) -> None:
    folder = photo_set(4)
    project = _failed_upload(proxy, token, folder)

    def worker() -> None:  # stands in for the qcluster: the run fails again
        try:
            for _ in range(200):
                claimed = jobs.job_claim_next()
                if claimed is not None:
                    jobs._finish_failed(claimed, code="engine_error", message="no luck")
                    return
                threading.Event().wait(0.05)
        finally:
            connections.close_all()

    thread = threading.Thread(target=worker)
    thread.start()
    code = reprocess(proxy, token[1], str(folder), "--wait")
    thread.join(15)

    assert code == cli.EXIT_PROCESSING_FAILED
    err = capsys.readouterr().err
    assert "no luck" in err
    assert f"openscan-upload reprocess {project.id}" in err
    state = load_state(folder / STATE_FILE_NAME)
    assert (state.api, state.project.id, state.phase) == (
        "rest",
        str(project.id),
        "failed",
    )


def test_reprocess_errors_exit_6_with_what_to_do(
    proxy,  # noqa: F811
    token,  # noqa: F811
    photo_set,
    capsys,
) -> None:
    project = _failed_upload(proxy, token, photo_set(4))
    default_storage.delete(project.input_path)

    assert reprocess(proxy, token[1], str(project.id)) == cli.EXIT_REJECTED
    assert "upload the photos again" in capsys.readouterr().err
    assert reprocess(proxy, token[1], "no-such-scan") == cli.EXIT_REJECTED
    assert "no project named 'no-such-scan'" in capsys.readouterr().err
    assert charges(token[0]) == 1
