"""Worker steps for tests: the input check run inline, or a worker thread."""

import contextlib
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from django.db import connections

from projects.models import Project
from projects.services import jobs


def input_prepare() -> Project:
    """Claim the queued project and join and check its parts
    as the worker does (no engine)."""
    project = jobs.job_claim_next()
    assert project is not None, "no queued project"
    with tempfile.TemporaryDirectory() as workdir:
        jobs.job_input_prepare(project=project, zip_path=Path(workdir) / "input.zip")
    project.refresh_from_db()
    return project


@contextlib.contextmanager
def worker_thread(join_timeout: float) -> Iterator[None]:
    """A thread that processes whatever gets queued, standing in for the qcluster."""
    stop = threading.Event()

    def work() -> None:
        try:
            while not stop.is_set():
                if jobs.job_run_next() is None:
                    stop.wait(0.5)
        finally:
            connections.close_all()

    thread = threading.Thread(target=work)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(join_timeout)
