"""Running reconstructions: claim, run in a child process, record, recover.

A queued project is processed by whichever django-q2 task gets to it first:
every task claims the best queued project at the time it runs (private tokens
before public ones, then oldest first) with a conditional UPDATE, so priority
holds whatever order the broker delivers tasks in and no project is ever
processed twice. The engine runs in a child process with its own time limit
(native code cannot be interrupted by a Python timeout), a heartbeat thread
keeps ``heartbeat_at`` fresh, and the sweeper re-queues or fails projects
whose worker died.
"""

import datetime
import logging
import secrets
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import close_old_connections, transaction
from django.db.models import F
from django.utils import timezone
from django_q.brokers import get_broker

from openscan_portal.exceptions import ApplicationError
from projects.archive import ArchiveError, inspect_zip
from projects.models import Project
from projects.pipeline import PipelineError, Preset, Progress, ReconstructionRequest
from projects.pipeline.types import RESULT_FILES, ErrorCode
from projects.selectors import queue_rank
from projects.services.notifications import notification_enqueue
from projects.services.projects import archive_limits, project_refund
from projects.services.queue import job_enqueue, job_enqueue_on_commit
from projects.services.scale import project_scale_forget
from projects.services.uploads import parts_join, upload_discard
from projects.storage import storage_delete_tree, temp_dir, temp_dir_remove

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 10
LOG_TAIL = 30


def job_claim_next() -> Project | None:
    """Claim the best queued project for this worker, or
    None when the queue is empty."""
    for _ in range(20):
        candidate = (
            Project.objects.filter(status=Project.Status.QUEUED)
            .annotate(rank=queue_rank())
            .order_by("rank", "queued_at")
            .values_list("pk", flat=True)
            .first()
        )
        if candidate is None:
            return None
        now = timezone.now()
        won = Project.objects.filter(pk=candidate, status=Project.Status.QUEUED).update(
            status=Project.Status.PROCESSING,
            started_at=now,
            heartbeat_at=now,
            attempts=F("attempts") + 1,
            progress={
                "stage": "starting",
                "fraction": 0.0,
                "log": ["Claimed by a worker."],
            },
        )
        if won:
            return Project.objects.select_related("token").get(pk=candidate)
    return None


class _ProgressRecorder:
    """Writes progress and the heartbeat; tells the engine to stop when the project was
    cancelled."""

    def __init__(self, project: Project) -> None:
        self.project_id = project.pk
        self.started = time.monotonic()
        self.cancel = threading.Event()
        self.log: list[str] = list(project.progress.get("log", []))
        self.state: dict[str, Any] = {"stage": "starting", "fraction": 0.0}
        self._lock = threading.Lock()
        self._last_write = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def __enter__(self) -> "_ProgressRecorder":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            self.flush()
        close_old_connections()

    def on_progress(self, progress: Progress) -> None:
        with self._lock:
            elapsed = time.monotonic() - self.started
            # The pipeline's cost model weighs stages by their predicted time;
            # an equal split per stage is the fallback for reports without it.
            overall = (
                progress.overall
                if progress.overall is not None
                else (progress.stage_index + progress.fraction)
                / max(1, progress.stage_count)
            )
            self.state = {
                "stage": progress.stage,
                "stage_index": progress.stage_index,
                "stage_count": progress.stage_count,
                "fraction": round(progress.fraction, 4),
                "overall": round(overall, 4),
                "counters": dict(progress.counters),
                "count": {
                    "unit": progress.unit,
                    "done": progress.done,
                    "total": progress.total,
                }
                if progress.unit
                else None,
                "message": progress.message,
                "elapsed_seconds": round(elapsed, 1),
                "eta_seconds": progress.eta_seconds,
            }
            if progress.message and (not self.log or self.log[-1] != progress.message):
                self.log = [*self.log, progress.message][-LOG_TAIL:]
        if (
            time.monotonic() - self._last_write
            > settings.OPENSCAN_PROGRESS_WRITE_SECONDS
        ):
            self.flush()

    def note(self, message: str) -> None:
        """Record a step of the portal's own before the engine starts, and flush it.

        The stage stays ``starting``: pages and clients know the engine's stages.
        """
        with self._lock:
            self.state = {**self.state, "message": message}
            self.log = [*self.log, message][-LOG_TAIL:]
        self.flush()

    def flush(self) -> None:
        with self._lock:
            state = {**self.state, "log": self.log}
            self._last_write = time.monotonic()
        updated = Project.objects.filter(
            pk=self.project_id, status=Project.Status.PROCESSING
        ).update(progress=state, heartbeat_at=timezone.now())
        if not updated:  # Cancelled (or taken away by the sweeper): stop the engine.
            self.cancel.set()


def _save_outputs(project: Project, out_dir: Path) -> tuple[str, dict[str, int]]:
    prefix = f"{project.storage_prefix}/result-{project.upload_generation}"
    sizes: dict[str, int] = {}
    for name in (f.name for f in RESULT_FILES):
        path = out_dir / name
        if not path.is_file():
            continue
        with path.open("rb") as fh:
            default_storage.save(f"{prefix}/{name}", File(fh, name=name))
        sizes[name] = path.stat().st_size
    return prefix, sizes


def _finish_failed(project: Project, *, code: str, message: str) -> None:
    with transaction.atomic():
        locked = (
            Project.objects.select_for_update()
            .select_related("token")
            .get(pk=project.pk)
        )
        if locked.status != Project.Status.PROCESSING:
            return  # Cancelled meanwhile: the cancel decided the outcome.
        refunded = project_refund(
            project=locked, reason=f"Project '{locked.name}' failed: {code}"
        )
        log = [*locked.progress.get("log", []), f"Failed: {message}"][-LOG_TAIL:]
        locked.status = Project.Status.FAILED
        locked.error, locked.error_code = message, code
        locked.finished_at = timezone.now()
        locked.progress = {**locked.progress, "log": log, "refunded": refunded}
        locked.save()
    job_after_finish(project=locked)


def job_after_finish(*, project: Project) -> None:
    """What follows a finished or failed job: the owner's
    e-mail alert (private tokens)."""
    logger.info("project %s finished as %s", project.pk, project.status)
    with transaction.atomic():
        notification_enqueue(project=project)


def job_input_prepare(*, project: Project, zip_path: Path) -> bool:
    """Join the uploaded parts into ``zip_path``, check the
    zip, and keep it as the input.

    Runs in the worker so that startProject answers at once. Returns False when
    the project stopped being processed meanwhile (cancelled).

    Raises:
        ApplicationError: a part is missing or damaged.
        ArchiveError: the zip cannot be used (the message names the entry).
    """
    parts_join(project=project, dest=zip_path)
    began = time.process_time()
    try:
        summary = inspect_zip(zip_path, limits=archive_limits(project=project))
    finally:
        Project.objects.filter(pk=project.pk).update(
            check_cpu_seconds=F("check_cpu_seconds") + (time.process_time() - began)
        )
    if len(summary.images) > project.photos:
        raise ApplicationError(
            f"The zip contains {len(summary.images)} photos but the project was "
            f"created for {project.photos}. Reset it and create it again with "
            f"photos={len(summary.images)}.",
            code=ErrorCode.PHOTO_COUNT,
        )
    # A unique name: a task delivered twice must not overwrite the other's copy.
    name = (
        f"{project.storage_prefix}/input-{project.upload_generation}-"
        f"{secrets.token_hex(4)}.zip"
    )
    with zip_path.open("rb") as fh:
        stored = default_storage.save(name, File(fh, name="input.zip"))
    with transaction.atomic():
        locked = Project.objects.select_for_update().filter(pk=project.pk).first()
        if locked is None or locked.status != Project.Status.PROCESSING:
            transaction.on_commit(lambda: default_storage.delete(stored))
            return False
        locked.input_path = stored
        locked.image_count = len(summary.images)
        locked.save(update_fields=["input_path", "image_count", "updated_at"])
        upload_discard(project=locked)
    project.input_path, project.image_count = stored, len(summary.images)
    return True


def job_run(*, project: Project) -> None:
    """Process a claimed project to ``done`` or ``failed``; never leaves it processing.

    A project whose parts were never joined (input_path empty) is joined and
    checked first, under the same heartbeat; a zip that fails the checks ends
    ``failed`` with the reason, refunded like any failure.
    """
    workdir = temp_dir()
    recorder = _ProgressRecorder(project)
    try:
        zip_path = workdir / "input.zip"
        with recorder:
            if project.input_path:
                with (
                    default_storage.open(project.input_path, "rb") as src,
                    zip_path.open("wb") as dst,
                ):
                    shutil.copyfileobj(src, dst, 1 << 20)
            else:
                recorder.note("Joining the parts and checking the zip.")
                if not job_input_prepare(project=project, zip_path=zip_path):
                    return
                recorder.note(f"The zip holds {project.image_count} usable photos.")
            request = ReconstructionRequest.from_input_path(
                zip_path,
                out_dir=workdir / "out",
                workdir=workdir / "work",
                preset=Preset(project.preset),
                max_image_pixels=settings.OPENSCAN_MAX_IMAGE_PIXELS,
            )
            from projects.pipeline.runner import (
                run_isolated,
            )  # the engine loads only in workers

            result = run_isolated(
                request,
                time_limit_s=settings.OPENSCAN_JOB_TIMEOUT_SECONDS,
                memory_limit_bytes=settings.OPENSCAN_JOB_MEMORY_LIMIT_MB * 2**20
                or None,
                on_progress=recorder.on_progress,
                cancel_event=recorder.cancel,
            )
        prefix, sizes = _save_outputs(project, workdir / "out")
    except PipelineError as exc:
        _finish_failed(project, code=exc.code, message=exc.message)
        return
    except ApplicationError as exc:
        _finish_failed(project, code=exc.code, message=exc.message)
        return
    except ArchiveError as exc:
        _finish_failed(project, code=ErrorCode.BAD_ARCHIVE, message=str(exc))
        return
    except (
        Exception
    ) as exc:  # Ours, not the photos': record it, never leave the job hanging.
        logger.exception("project %s crashed", project.pk)
        _finish_failed(
            project,
            code=ErrorCode.INTERNAL_ERROR,
            message=f"The server failed while processing ({type(exc).__name__}). The "
            "credit was refunded; try again, and tell us if it happens again.",
        )
        return
    finally:
        temp_dir_remove(workdir)
    with transaction.atomic():
        locked = Project.objects.select_for_update().get(pk=project.pk)
        if locked.status != Project.Status.PROCESSING:
            transaction.on_commit(lambda: storage_delete_tree(prefix))
            return
        summary = (
            f"Done: {result.images_registered} of {result.images_total} photos "
            f"placed, {result.faces} faces."
        )
        locked.status = Project.Status.DONE
        locked.result_path = prefix
        project_scale_forget(project=locked)  # it measured an earlier model
        locked.finished_at = timezone.now()
        locked.progress = {
            **recorder.state,
            "stage": "done",
            "fraction": 1.0,
            "overall": 1.0,
            "eta_seconds": 0,
            "log": [*recorder.log, summary][-LOG_TAIL:],
            "files": sizes,
            "stats": {
                "images_total": result.images_total,
                "images_registered": result.images_registered,
                "sparse_points": result.sparse_points,
                "dense_points": result.dense_points,
                "vertices": result.vertices,
                "faces": result.faces,
                "mean_reprojection_error": round(result.mean_reprojection_error, 3),
                "seconds": round(result.seconds, 1),
            },
            "warnings": list(result.warnings),
        }
        locked.save()
    job_after_finish(project=locked)


def job_run_next() -> Project | None:
    """Claim and process the best queued project, if any; return it."""
    project = job_claim_next()
    if project is None:
        return None
    job_run(project=project)
    return project


def jobs_sweep(
    *, stale_after: datetime.timedelta | None = None, max_attempts: int | None = None
) -> dict[str, int]:
    """Recover projects whose worker died, and queued projects no task will pick up.

    A processing project without a heartbeat for ``stale_after`` goes back to
    the queue, or fails with a reason once it has been tried ``max_attempts``
    times. Safe to run twice at once: every change is a conditional UPDATE.
    """
    stale_after = stale_after or datetime.timedelta(
        seconds=settings.OPENSCAN_HEARTBEAT_STALE_SECONDS
    )
    max_attempts = max_attempts or settings.OPENSCAN_JOB_MAX_ATTEMPTS
    now = timezone.now()
    requeued = failed = 0
    stale = Project.objects.filter(
        status=Project.Status.PROCESSING, heartbeat_at__lt=now - stale_after
    )
    for project in stale.select_related("token"):
        if project.attempts < max_attempts:
            requeued += Project.objects.filter(
                pk=project.pk,
                status=Project.Status.PROCESSING,
                heartbeat_at=project.heartbeat_at,
            ).update(status=Project.Status.QUEUED, queued_at=now, heartbeat_at=None)
            job_enqueue_on_commit(project=project)
            continue
        with transaction.atomic():
            locked = (
                Project.objects.select_for_update()
                .select_related("token")
                .get(pk=project.pk)
            )
            if (
                locked.status != Project.Status.PROCESSING
                or locked.heartbeat_at != project.heartbeat_at
            ):
                continue
            project_refund(
                project=locked, reason=f"Project '{locked.name}' failed: worker stopped"
            )
            locked.status = Project.Status.FAILED
            locked.error_code = ErrorCode.WORKER_DIED
            locked.error = (
                f"The worker processing this project stopped {locked.attempts} times "
                "(out of memory or restarted). The credit was refunded; try the "
                "fast preset or fewer photos."
            )
            locked.finished_at = now
            locked.save()
            failed += 1
        job_after_finish(project=locked)
    # Queued projects but no task left in the broker (Redis loses tasks on a crash):
    # add tasks; an extra one is harmless, it claims the best project or nothing.
    nudged = 0
    waiting = Project.objects.filter(status=Project.Status.QUEUED).count()
    if waiting and get_broker().queue_size() == 0:
        nudged = min(waiting, settings.Q_CLUSTER.get("workers", 2))
        for _ in range(nudged):
            job_enqueue()
    return {"requeued": requeued, "failed": failed, "nudged": nudged}
