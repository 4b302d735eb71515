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


def done_project_from_run(token, engine_run: dict, *, name: str = "vase"):
    """A ``done`` project holding the session's engine outputs, as ``job_run`` leaves
    one: the checked input zip kept in storage, the outputs saved, stats recorded."""
    import io
    import zipfile

    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage
    from django.utils import timezone

    from projects.models import Project
    from projects.services.jobs import _save_outputs

    photos: dict[str, bytes] = engine_run["photos"]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for photo, data in photos.items():
            archive.writestr(photo, data)
    result = engine_run["result"]
    project = Project.objects.create(
        token=token,
        name=name,
        photos=len(photos),
        filesize=buffer.tell(),
        parts=1,
        status=Project.Status.DONE,
        image_count=len(photos),
        charged=buffer.tell(),
        finished_at=timezone.now(),
    )
    project.input_path = default_storage.save(
        f"{project.storage_prefix}/input-1-test.zip", ContentFile(buffer.getvalue())
    )
    project.result_path, sizes = _save_outputs(project, engine_run["out_dir"])
    project.progress = {
        "stage": "done",
        "fraction": 1.0,
        "overall": 1.0,
        "log": ["Done."],
        "files": sizes,
        "stats": {
            "images_total": result.images_total,
            "images_registered": result.images_registered,
            "dense_points": result.dense_points,
            "vertices": result.vertices,
            "faces": result.faces,
            "mean_reprojection_error": round(result.mean_reprojection_error, 3),
            "seconds": round(result.seconds, 1),
        },
        "warnings": list(result.warnings),
    }
    project.save()
    return project
