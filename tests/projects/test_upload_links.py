import datetime

import pytest
import time_machine
from django.test import Client

from projects.models import Project, UploadChunk
from projects.services import project_create, project_reset
from tests.images import photo_set, zip_bytes

pytestmark = pytest.mark.django_db


def _link(project: Project, part: int = 0) -> str:
    from projects import links

    return links.upload_path(
        project_id=project.id, generation=project.upload_generation, part=part
    )


@pytest.fixture
def project(private_token, settings):
    # Two parts of a 400-byte zip are only real with 200-byte parts.
    settings.OPENSCAN_PART_MAX_BYTES = 200
    return project_create(
        token=private_token[0], name="scan.zip", photos=3, parts=2, filesize=400
    )


def _post(path: str, body: bytes, **extra: str):
    return Client().post(
        path, data=body, content_type="application/octet-stream", **extra
    )


@pytest.mark.parametrize(("seconds", "status"), [(14_399, 200), (14_401, 410)])
def test_upload_link_expires_after_4_hours(project, seconds, status):
    start = datetime.datetime(2026, 5, 1, 12, 0, tzinfo=datetime.UTC)
    with time_machine.travel(start, tick=False):
        path = _link(project)
    with time_machine.travel(start + datetime.timedelta(seconds=seconds), tick=False):
        r = _post(path, b"x" * 200)
    assert r.status_code == status
    assert UploadChunk.objects.count() == (1 if status == 200 else 0)
    if status == 410:
        assert "expired" in r.json()["error"]


def test_forged_or_swapped_links_are_refused(project, private_token):
    path = _link(project)
    flipped = path[:-3] + ("A" if path[-3] != "A" else "B") + path[-2:]
    other = project_create(
        token=private_token[0], name="other.zip", photos=3, parts=2, filesize=400
    )
    signed_for_other = _link(other, 1)
    assert _post(flipped, b"x").status_code == 403
    assert _post(signed_for_other, b"x" * 10).status_code == 200
    assert UploadChunk.objects.filter(project=project).count() == 0
    assert UploadChunk.objects.get().project == other


def test_links_of_an_earlier_upload_stop_working_after_reset(project):
    old = _link(project)
    project_reset(project=project)
    r = _post(old, b"x" * 10)
    assert r.status_code == 410
    assert "earlier upload" in r.json()["error"]


def test_oversize_part_is_refused_before_reading_and_nothing_is_stored(
    project, settings
):
    settings.OPENSCAN_PART_MAX_BYTES = 100
    r = _post(_link(project), b"x" * 101)
    assert r.status_code == 413
    assert "at most 100 bytes" in r.json()["error"]
    assert not UploadChunk.objects.exists()
    from django.core.files.storage import default_storage

    assert not default_storage.exists(f"{project.storage_prefix}/upload")


def test_link_only_accepts_post(project):
    assert Client().get(_link(project)).status_code == 405


def test_body_ending_early_stores_nothing(project):
    class Short:
        def __init__(self, data: bytes) -> None:
            self.data = data

        def read(self, n: int = -1) -> bytes:
            out, self.data = self.data[:n], self.data[n:]
            return out

    from openscan_portal.exceptions import ApplicationError
    from projects.services import part_replace

    with pytest.raises(ApplicationError, match="ended early"):
        part_replace(
            project=project, generation=1, part=0, stream=Short(b"x" * 50), length=200
        )
    assert not UploadChunk.objects.exists()


def test_start_then_upload_is_refused(project, private_token, settings):
    settings.OPENSCAN_PART_MAX_BYTES = 200_000_000
    data = zip_bytes(photo_set(3))
    p = project_create(
        token=private_token[0],
        name="started.zip",
        photos=3,
        parts=1,
        filesize=len(data),
    )
    assert _post(_link(p), data).status_code == 200
    from projects.services import project_start

    project_start(project=p)
    r = _post(_link(Project.objects.get(pk=p.pk)), data)
    assert r.status_code == 409
