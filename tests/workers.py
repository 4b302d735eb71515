"""The worker's first step, run inline: join and check a started project's parts."""

import tempfile
from pathlib import Path

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
