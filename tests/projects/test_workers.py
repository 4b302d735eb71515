"""Real django-q2 clusters in their own processes: brokers,
many workers, a worker killed."""

import datetime
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.utils import timezone

from projects.models import Project
from projects.services import jobs
from tests.projects.conftest import queue_project

pytestmark = [
    pytest.mark.engine,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
]
ROOT = Path(__file__).resolve().parents[2]


def _cluster_env(**extra: str) -> dict[str, str]:
    db = connection.settings_dict
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(
        DJANGO_SETTINGS_MODULE="openscan_portal.test_settings",
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        OPENSCAN_TEST_MEDIA_ROOT=str(django_settings.MEDIA_ROOT),
        OPENSCAN_WORKERS="1",
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


def _start_cluster(env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _stop(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(process.pid, signal.SIGKILL)


def _wait_terminal(ids: list, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        statuses = dict(Project.objects.filter(pk__in=ids).values_list("pk", "status"))
        if all(s in {"done", "failed"} for s in statuses.values()):
            return statuses
        time.sleep(1)
    return dict(Project.objects.filter(pk__in=ids).values_list("pk", "status"))


def _descendants(pid: int) -> list[int]:
    out = subprocess.run(
        ["ps", "-o", "pid=,ppid=", "-e"], capture_output=True, text=True
    ).stdout.split("\n")
    children: dict[int, list[int]] = {}
    for line in out:
        if line.strip():
            p, pp = map(int, line.split())
            children.setdefault(pp, []).append(p)
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def test_two_workers_on_redis_process_a_batch_once_each(
    private_token, turntable_zip, tmp_path
):
    token, _ = private_token
    projects = [
        queue_project(token, turntable_zip, name=f"batch-{i}.zip") for i in range(3)
    ]
    env = _cluster_env(REDIS_URL="redis://127.0.0.1:6379/15")
    subprocess.run(
        ["redis-cli", "-n", "15", "FLUSHDB"], check=True, capture_output=True
    )
    # Projects were queued on the ORM broker by this process; hand them to Redis as the
    # web would.
    subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "from projects.services.queue import job_enqueue\nfor _ in range(3): "
            "job_enqueue()",
        ],
        cwd=ROOT,
        env=env,
        check=True,
    )
    clusters = [_start_cluster(env, tmp_path / f"cluster{i}.log") for i in range(2)]
    try:
        statuses = _wait_terminal([p.pk for p in projects], timeout=600)
    finally:
        for c in clusters:
            _stop(c)
    logs = "".join((tmp_path / f"cluster{i}.log").read_text() for i in range(2))
    assert set(statuses.values()) == {"done"}, logs[-3000:]
    assert list(
        Project.objects.filter(pk__in=[p.pk for p in projects]).values_list(
            "attempts", flat=True
        )
    ) == [1, 1, 1]


def test_a_worker_killed_mid_job_ends_done_or_failed_with_a_reason(
    private_token, turntable_zip, tmp_path
):
    token, _ = private_token
    project = queue_project(token, turntable_zip, name="killed.zip")
    env = _cluster_env()
    cluster = _start_cluster(env, tmp_path / "cluster.log")
    try:
        for _ in range(300):
            project.refresh_from_db()
            if project.status == "processing" and project.progress.get("stage") not in (
                None,
                "starting",
            ):
                break
            time.sleep(0.2)
        assert project.status == "processing", (tmp_path / "cluster.log").read_text()[
            -2000:
        ]
        # The worker process is the one whose child runs the engine: kill it without
        # warning.
        engine_pids = [
            p
            for p in _descendants(cluster.pid)
            if "spawn" in Path(f"/proc/{p}/cmdline").read_text(errors="ignore")
        ]
        worker_pid = int(
            Path(f"/proc/{engine_pids[0]}/stat")
            .read_text()
            .rsplit(")", 1)[1]
            .split()[1]
        )
        os.kill(worker_pid, signal.SIGKILL)
        time.sleep(3)
        assert all(
            not Path(f"/proc/{p}").exists() for p in engine_pids
        )  # the engine died with it
        # The heartbeat stops; the sweeper (every minute in production) re-queues it.
        Project.objects.filter(pk=project.pk).update(
            heartbeat_at=timezone.now() - datetime.timedelta(minutes=10)
        )
        assert jobs.jobs_sweep()["requeued"] == 1
        statuses = _wait_terminal([project.pk], timeout=400)
    finally:
        _stop(cluster)
    project.refresh_from_db()
    assert statuses[project.pk] in {"done", "failed"}
    assert project.status == "done" or project.error
    assert project.attempts == 2
