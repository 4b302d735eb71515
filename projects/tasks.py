"""django-q2 entry points: load, call a service, done."""

from projects.services import jobs


def project_process(project_id: str = "") -> None:
    """Process the best queued project (not necessarily ``project_id``: priority decides)."""
    jobs.job_run_next()


def jobs_sweep() -> dict[str, int]:
    """Recover projects whose worker died; runs every minute."""
    return jobs.jobs_sweep()
