"""Receiving the parts of a project's zip and putting them back together."""

import hashlib
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import Sum

from openscan_portal.exceptions import ApplicationError
from projects.models import Project, UploadChunk
from projects.streams import BodyFile


def _check_uploadable(project: Project, *, generation: int, part: int) -> None:
    if generation != project.upload_generation:
        raise ApplicationError(
            "This upload link belongs to an earlier upload of the project; use the links "
            "from the latest createProject or getProjectInfo.",
            status=410,
            code="link_superseded",
        )
    if project.status != Project.Status.CREATED:
        raise ApplicationError(
            f"The project is already {project.get_status_display().lower()}; parts can only "
            "be sent before it starts. Reset the project to upload again.",
            status=409,
            code="project_started",
        )
    if not 0 <= part < project.parts:
        raise ApplicationError(f"The project has {project.parts} parts; there is no part {part + 1}.", status=404)


def part_received(*, project: Project, part: int) -> int:
    """Bytes of ``part`` stored so far for the project's current upload."""
    total = UploadChunk.objects.filter(
        project=project, generation=project.upload_generation, part=part
    ).aggregate(s=Sum("size"))["s"]
    return total or 0


def parts_received(*, project: Project) -> dict[int, int]:
    rows = (
        UploadChunk.objects.filter(project=project, generation=project.upload_generation)
        .values("part")
        .annotate(s=Sum("size"))
    )
    return {row["part"]: row["s"] for row in rows}


def _delete_files_on_commit(names: list[str]) -> None:
    def delete() -> None:
        for name in names:
            default_storage.delete(name)

    transaction.on_commit(delete)


def _stream_to_storage(project: Project, part: int, stream: BinaryIO, length: int) -> tuple[str, BodyFile]:
    limit = settings.OPENSCAN_PART_MAX_BYTES
    if length > limit:
        raise ApplicationError(
            f"A part may be at most {limit} bytes; this one is {length}. Split the zip into "
            "smaller parts.",
            status=413,
            code="part_too_large",
        )
    body = BodyFile(stream, length=length)
    name = f"{project.storage_prefix}/upload/{part:04d}-{secrets.token_hex(8)}.bin"
    try:
        stored = default_storage.save(name, body)
    except ApplicationError:
        default_storage.delete(name)
        raise
    return stored, body


def part_replace(
    *, project: Project, generation: int, part: int, stream: BinaryIO, length: int
) -> UploadChunk:
    """Store a whole part (the wire protocol's POST), replacing what was sent before."""
    _check_uploadable(project, generation=generation, part=part)
    if length <= 0:
        raise ApplicationError("The part is empty; send the bytes of the zip part as the body.")
    stored, body = _stream_to_storage(project, part, stream, length)
    if body.bytes_written <= 0:
        default_storage.delete(stored)
        raise ApplicationError("The part is empty; send the bytes of the zip part as the body.")
    with transaction.atomic():
        # Re-read under a lock: the project may have started while the bytes streamed in.
        locked = Project.objects.select_for_update().get(pk=project.pk)
        try:
            _check_uploadable(locked, generation=generation, part=part)
        except ApplicationError:
            default_storage.delete(stored)
            raise
        old = list(
            UploadChunk.objects.filter(project=locked, generation=generation, part=part)
        )
        UploadChunk.objects.filter(pk__in=[c.pk for c in old]).delete()
        chunk = UploadChunk.objects.create(
            project=locked,
            generation=generation,
            part=part,
            offset=0,
            size=body.bytes_written,
            sha256=body.sha256,
            storage_name=stored,
        )
        _delete_files_on_commit([c.storage_name for c in old])
    return chunk


def part_append(
    *, project: Project, part: int, offset: int, stream: BinaryIO, length: int
) -> int:
    """Append bytes at ``offset`` of a part (resumable upload); return the new offset.

    Raises:
        ApplicationError: 409 when ``offset`` is not where the part ends now.
    """
    generation = project.upload_generation
    _check_uploadable(project, generation=generation, part=part)
    current = part_received(project=project, part=part)
    if offset != current:
        raise ApplicationError(
            f"The part has {current} bytes on the server; resume from offset {current}.",
            status=409,
            code="offset_mismatch",
        )
    if length <= 0:
        return current
    limit = settings.OPENSCAN_PART_MAX_BYTES
    if current + length > limit:
        raise ApplicationError(
            f"A part may be at most {limit} bytes; this would make it {current + length}.",
            status=413,
            code="part_too_large",
        )
    stored, body = _stream_to_storage(project, part, stream, length)
    try:
        with transaction.atomic():
            locked = Project.objects.select_for_update().get(pk=project.pk)
            _check_uploadable(locked, generation=generation, part=part)
            UploadChunk.objects.create(
                project=locked,
                generation=generation,
                part=part,
                offset=offset,
                size=body.bytes_written,
                sha256=body.sha256,
                storage_name=stored,
            )
    except IntegrityError as exc:
        default_storage.delete(stored)
        raise ApplicationError(
            "Another upload wrote at this offset at the same time; ask for the offset again.",
            status=409,
            code="offset_mismatch",
        ) from exc
    except ApplicationError:
        default_storage.delete(stored)
        raise
    return offset + body.bytes_written


def parts_join(*, project: Project, dest: Path) -> str:
    """Write the current upload's parts, in order, into ``dest``; return its sha256.

    Raises:
        ApplicationError: a part is missing or the sizes do not add up to ``filesize``.
    """
    received = parts_received(project=project)
    missing = [str(i + 1) for i in range(project.parts) if not received.get(i)]
    if missing:
        raise ApplicationError(
            f"Part(s) {', '.join(missing)} of {project.parts} have not arrived. Upload them "
            "(getProjectInfo gives fresh links) and start again.",
            code="parts_missing",
        )
    total = sum(received.values())
    if total != project.filesize:
        raise ApplicationError(
            f"The parts add up to {total} bytes but the project was created with filesize "
            f"{project.filesize}. Upload the parts again or create the project with the right size.",
            code="size_mismatch",
        )
    digest = hashlib.sha256()
    chunks = UploadChunk.objects.filter(
        project=project, generation=project.upload_generation
    ).order_by("part", "offset")
    with dest.open("wb") as out:
        for chunk in chunks:
            with default_storage.open(chunk.storage_name, "rb") as src:
                while data := src.read(1 << 20):
                    digest.update(data)
                    out.write(data)
    return digest.hexdigest()


def upload_discard(*, project: Project) -> None:
    """Delete every uploaded chunk of the project (all generations), after commit."""
    chunks = list(UploadChunk.objects.filter(project=project))
    UploadChunk.objects.filter(pk__in=[c.pk for c in chunks]).delete()
    _delete_files_on_commit([c.storage_name for c in chunks])


def temp_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="openscan-"))


def temp_dir_remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def uploads_part_limit() -> int:
    return settings.OPENSCAN_PART_MAX_BYTES
