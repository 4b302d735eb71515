"""Handing work to django-q2 (the broker is the ORM or Redis, from settings)."""

from django.db import transaction
from django_q.tasks import async_task

from projects.models import Project


def job_enqueue(*, project_id: str = "") -> None:
    """Ask a worker to process the best queued project (see jobs.job_claim_next)."""
    async_task(
        "projects.tasks.project_process",
        project_id,
        task_name=f"process {project_id}"[:100],
    )


def job_enqueue_on_commit(*, project: Project) -> None:
    project_id = str(project.id)
    transaction.on_commit(lambda: job_enqueue(project_id=project_id))
