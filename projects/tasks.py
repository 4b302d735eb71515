"""django-q2 entry points: load, call a service, done."""

from projects.services import jobs, notifications, retention


def project_process(project_id: str = "") -> None:
    """Process the best queued project (not necessarily
    ``project_id``: priority decides)."""
    jobs.job_run_next()


def jobs_sweep() -> dict[str, int]:
    """Recover projects whose worker died; runs every minute."""
    return jobs.jobs_sweep()


def project_notify(project_id: str, attempt: int = 1) -> str:
    """E-mail the owner of a finished or failed private
    project (retries with backoff)."""
    return notifications.notification_send(project_id=project_id, attempt=attempt)


def projects_expire() -> dict[str, int]:
    """Expire abandoned uploads and old results; runs every hour."""
    return retention.projects_expire()
