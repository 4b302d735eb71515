"""The step that turns an uploaded project into a finished one, as a worker would."""

from __future__ import annotations

from pathlib import Path

from benchmarks.synthetic import generate, spec_for


def process_queued_projects(*, limit: int = 5) -> int:
    """Process every queued project with the real engine (the worker's own function)."""
    from projects.services.jobs import job_run_next

    done = 0
    while done < limit and job_run_next() is not None:
        done += 1
    return done


def photo_set_for_upload(workdir: Path, *, views: int = 24) -> dict[str, bytes]:
    """A rendered turntable set the engine can reconstruct."""
    out = generate(workdir, spec_for(views, 640, 480))
    return {p.name: p.read_bytes() for p in sorted((out / "images").glob("*.jpg"))}
