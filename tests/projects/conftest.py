"""Shared fixtures for the project tests: a rendered
turntable set the engine can rebuild."""

import io

import pytest

from projects.models import Project
from projects.services import part_replace, project_create, project_start
from tests.images import zip_bytes


@pytest.fixture(scope="session")
def turntable_zip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    from benchmarks.synthetic import generate, spec_for

    root = generate(
        tmp_path_factory.mktemp("portal-turntable"),
        spec_for(24, 400, 300, supersample=1),
    )
    images = sorted((root / "images").iterdir())
    return zip_bytes({p.name: p.read_bytes() for p in images})


def queue_project(
    token,
    data: bytes,
    *,
    name: str = "statuette.zip",
    photos: int = 24,
    preset: str = "fast",
) -> Project:
    """Create, upload and start a project exactly as the wire API does."""
    project = project_create(
        token=token,
        name=name,
        photos=photos,
        parts=1,
        filesize=len(data),
        preset=preset,
    )
    part_replace(
        project=project,
        generation=project.upload_generation,
        part=0,
        stream=io.BytesIO(data),
        length=len(data),
    )
    return project_start(project=project)


def patch_part(client, url: str, offset: int, body: bytes):
    """One resumable REST PATCH of ``body`` at ``offset``."""
    return client.generic(
        "PATCH",
        url,
        body,
        content_type="application/offset+octet-stream",
        HTTP_UPLOAD_OFFSET=str(offset),
    )
