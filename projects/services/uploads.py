"""Receiving the parts of a project's zip and putting them back together."""

import hashlib
import io
import secrets
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import Sum

from openscan_portal.exceptions import ApplicationError
from projects import storage
from projects.archive import ArchiveError, ArchiveLimits, inspect_directory
from projects.models import Project, UploadChunk
from projects.streams import BodyFile


def project_lock(project: Project) -> Project:
    """Re-read the project under a row lock (inside a transaction).

    Raises:
        ApplicationError: 404 when it was deleted meanwhile (a delete racing
            an upload, start, reset or another delete).
    """
    locked = (
        Project.objects.select_for_update()
        .select_related("token")
        .filter(pk=project.pk)
        .first()
    )
    if locked is None:
        raise ApplicationError(
            "The project no longer exists; it was deleted.",
            status=404,
            code="project_gone",
        )
    return locked


def _check_uploadable(project: Project, *, generation: int, part: int) -> None:
    if generation != project.upload_generation:
        raise ApplicationError(
            "This upload link belongs to an earlier upload of the project; use the "
            "links from the latest createProject or getProjectInfo.",
            status=410,
            code="link_superseded",
        )
    if project.status != Project.Status.CREATED:
        raise ApplicationError(
            f"The project is already {project.get_status_display().lower()}; parts "
            "can only be sent before it starts. Reset the project to upload again.",
            status=409,
            code="project_started",
        )
    if not 0 <= part < project.parts:
        raise ApplicationError(
            f"The project has {project.parts} parts; there is no part {part + 1}.",
            status=404,
        )


def part_received(*, project: Project, part: int) -> int:
    """Bytes of ``part`` stored so far for the project's current upload."""
    total = UploadChunk.objects.filter(
        project=project, generation=project.upload_generation, part=part
    ).aggregate(s=Sum("size"))["s"]
    return total or 0


def parts_received(*, project: Project) -> dict[int, int]:
    rows = (
        UploadChunk.objects.filter(
            project=project, generation=project.upload_generation
        )
        .values("part")
        .annotate(s=Sum("size"))
    )
    return {row["part"]: row["s"] for row in rows}


def _chunks_delete(chunks: list[UploadChunk], *, keep_file: str = "") -> None:
    """Delete the rows now and their files after commit, so a rollback keeps both.

    ``keep_file`` is a stored name a new row takes over (a re-registered part).
    """
    UploadChunk.objects.filter(pk__in=[c.pk for c in chunks]).delete()
    names = [c.storage_name for c in chunks if c.storage_name != keep_file]

    def delete() -> None:
        for name in names:
            default_storage.delete(name)

    transaction.on_commit(delete)


def _stream_to_storage(
    project: Project, part: int, stream: BinaryIO, length: int | None
) -> tuple[str, BodyFile]:
    backend = storage.backend()
    limit = backend.part_max_bytes()
    if length is not None and length > limit:
        raise ApplicationError(
            f"A part may be at most {limit} bytes{backend.part_limit_reason()}; this "
            f"one is {length}. Split the zip into smaller parts.",
            status=413,
            code="part_too_large",
        )
    body = BodyFile(stream, length=length, limit=limit)
    name = f"{project.storage_prefix}/upload/{part:04d}-{secrets.token_hex(8)}.bin"
    try:
        stored = default_storage.save(name, body)
    except FileNotFoundError as exc:
        # A delete of the project removed the folder while the bytes streamed in.
        default_storage.delete(name)
        if Project.objects.filter(pk=project.pk).exists():
            raise
        raise ApplicationError(
            "The project was deleted during the upload.",
            status=404,
            code="project_gone",
        ) from exc
    except BaseException:
        # A cut-off (413), a broken body or a vanished client: keep no partial file.
        default_storage.delete(name)
        raise
    return stored, body


def part_replace(
    *,
    project: Project,
    generation: int,
    part: int,
    stream: BinaryIO,
    length: int | None,
) -> UploadChunk:
    """Store a whole part (the wire protocol's POST), replacing what was sent before.

    ``length`` None streams a chunked body to its end (413 past the part limit).
    """
    _check_uploadable(project, generation=generation, part=part)
    if length is not None and length <= 0:
        raise ApplicationError(
            "The part is empty; send the bytes of the zip part as the body."
        )
    stored, body = _stream_to_storage(project, part, stream, length)
    if body.bytes_written <= 0:
        default_storage.delete(stored)
        raise ApplicationError(
            "The part is empty; send the bytes of the zip part as the body."
        )
    with transaction.atomic():
        # Re-read under a lock: the project may have started (or gone) while the
        # bytes streamed in.
        try:
            locked = project_lock(project)
            _check_uploadable(locked, generation=generation, part=part)
        except ApplicationError:
            default_storage.delete(stored)
            raise
        old = list(
            UploadChunk.objects.filter(project=locked, generation=generation, part=part)
        )
        _chunks_delete(old)
        chunk = UploadChunk.objects.create(
            project=locked,
            generation=generation,
            part=part,
            offset=0,
            size=body.bytes_written,
            sha256=body.sha256,
            storage_name=stored,
        )
        _discard_direct_on_commit(locked, part)
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
            f"The part has {current} bytes on the server; resume from offset "
            f"{current}.",
            status=409,
            code="offset_mismatch",
        )
    if length <= 0:
        return current
    backend = storage.backend()
    limit = backend.part_max_bytes()
    if current + length > limit:
        raise ApplicationError(
            f"A part may be at most {limit} bytes{backend.part_limit_reason()}; this "
            f"would make it {current + length}.",
            status=413,
            code="part_too_large",
        )
    last = (
        UploadChunk.objects.filter(project=project, generation=generation, part=part)
        .order_by("-offset")
        .first()
    )
    if (
        last is not None
        and last.size + length <= settings.OPENSCAN_CHUNK_COALESCE_BYTES
    ):
        # Small pieces are merged in memory (bounded by the setting): every stored
        # piece but the last then pairs with its neighbour to exceed the setting,
        # so a part never has more than 2 * part_max / setting + 1 pieces.
        stored, size, sha = _merge_into(project, part, last, stream, length)
        offset_at, replaced = last.offset, last
    else:
        stored, body = _stream_to_storage(project, part, stream, length)
        size, sha = body.bytes_written, body.sha256
        offset_at, replaced = offset, None
    try:
        with transaction.atomic():
            locked = project_lock(project)
            _check_uploadable(locked, generation=generation, part=part)
            # Appends of one part serialize on the project's row: re-check the end.
            if part_received(project=locked, part=part) != offset:
                raise IntegrityError("the part changed while the chunk streamed in")
            if replaced is not None:
                _chunks_delete([replaced])
            UploadChunk.objects.create(
                project=locked,
                generation=generation,
                part=part,
                offset=offset_at,
                size=size,
                sha256=sha,
                storage_name=stored,
            )
            _discard_direct_on_commit(locked, part)
    except IntegrityError as exc:
        default_storage.delete(stored)
        raise ApplicationError(
            "Another upload wrote at this offset at the same time; ask for the "
            "offset again.",
            status=409,
            code="offset_mismatch",
        ) from exc
    except ApplicationError:
        default_storage.delete(stored)
        raise
    return offset_at + size


def _merge_into(
    project: Project,
    part: int,
    last: UploadChunk,
    stream: BinaryIO,
    length: int,
) -> tuple[str, int, str]:
    """Store ``last``'s bytes then the body as one new piece: (name, size, sha256)."""
    body = BodyFile(stream, length=length)
    added = b"".join(body.chunks())
    with default_storage.open(last.storage_name, "rb") as fh:
        before = fh.read()
    if len(before) != last.size or (
        last.sha256 and hashlib.sha256(before).hexdigest() != last.sha256
    ):
        raise _part_damaged(project, part, "a stored piece changed")
    data = before + added
    name = f"{project.storage_prefix}/upload/{part:04d}-{secrets.token_hex(8)}.bin"
    stored = default_storage.save(name, ContentFile(data))
    return stored, len(data), hashlib.sha256(data).hexdigest()


def _discard_direct_on_commit(project: Project, part: int) -> None:
    # A part that came through the server replaces one sent straight to the
    # backend before: without this, start would pick up the older direct copy.
    if storage.backend().remote:
        name = storage.direct_name(project, part)
        transaction.on_commit(lambda: default_storage.delete(name))


def part_direct_target(
    *, project: Project, part: int, method: str = "POST"
) -> dict[str, object]:
    """Where to send ``part`` straight to the storage backend
    (S3 presigned, Dropbox link).

    Raises:
        ApplicationError: 409 when this server's storage takes no direct uploads,
            or the project no longer accepts parts.
    """
    _check_uploadable(project, generation=project.upload_generation, part=part)
    if method.upper() not in {"POST", "PUT"}:
        raise ApplicationError("method must be POST or PUT.")
    target = storage.backend().direct_upload(project=project, part=part, method=method)
    if target is None:
        raise ApplicationError(
            "This server takes no direct uploads to its storage; send the part to "
            "its upload_url (PATCH) instead.",
            status=409,
            code="direct_upload_unavailable",
        )
    return target.as_dict()


def direct_parts_collect(*, project: Project) -> list[UploadChunk]:
    """Register the parts sent straight to the backend as chunks; return the new chunks.

    A direct upload replaces what the server received for the same part before
    it (the server deletes a part's direct copy whenever it receives that part).

    Raises:
        ApplicationError: a direct upload is larger than a part may be (it is
            deleted so the part can be sent again).
    """
    backend = storage.backend()
    objects = backend.direct_objects(project=project)
    if not objects:
        return []
    limit = backend.part_max_bytes()
    problems: list[str] = []
    accepted: list[storage.DirectObject] = []
    for obj in objects:
        if obj.part >= project.parts or obj.size <= 0:
            default_storage.delete(obj.name)
        elif obj.size > limit:
            default_storage.delete(obj.name)
            problems.append(f"part {obj.part + 1} is {obj.size} bytes")
        else:
            accepted.append(obj)
    if problems:
        raise ApplicationError(
            f"Sent straight to storage, {'; '.join(problems)}, but a part may be at "
            f"most {limit} bytes{backend.part_limit_reason()}. Split the zip into "
            "smaller parts and upload the part(s) again.",
            code="part_too_large",
        )
    created: list[UploadChunk] = []
    with transaction.atomic():
        locked = project_lock(project)
        if (
            locked.upload_generation != project.upload_generation
            or locked.status != Project.Status.CREATED
        ):
            raise ApplicationError(
                "The project changed while it was being checked; start it again.",
                status=409,
            )
        for obj in accepted:
            old = list(
                UploadChunk.objects.filter(
                    project=locked, generation=locked.upload_generation, part=obj.part
                )
            )
            if (
                len(old) == 1
                and old[0].storage_name == obj.name
                and old[0].size == obj.size
            ):
                continue
            _chunks_delete(old, keep_file=obj.name)
            created.append(
                UploadChunk.objects.create(
                    project=locked,
                    generation=locked.upload_generation,
                    part=obj.part,
                    offset=0,
                    size=obj.size,
                    sha256="",  # Not known until the bytes are read at start.
                    storage_name=obj.name,
                )
            )
    return created


def _part_damaged(project: Project, part: int, detail: str) -> ApplicationError:
    chunks = list(
        UploadChunk.objects.filter(
            project=project, generation=project.upload_generation, part=part
        )
    )
    _chunks_delete(chunks)
    return ApplicationError(
        f"Part {part + 1} of {project.parts} is not stored as it was received "
        f"({detail}). Upload it again and start again.",
        code="part_damaged",
    )


def parts_check(*, project: Project, collect: bool = True) -> None:
    """Check that every part of the current upload arrived and the sizes add up.

    Cheap (rows only), so startProject answers at once. ``collect`` first
    registers parts sent straight to the backend (only while ``created``).

    Raises:
        ApplicationError: a part is missing or too large, or the sizes do not
            add up to ``filesize``.
    """
    if collect:
        direct_parts_collect(project=project)
    received = parts_received(project=project)
    missing = [str(i + 1) for i in range(project.parts) if not received.get(i)]
    if missing:
        raise ApplicationError(
            f"Part(s) {', '.join(missing)} of {project.parts} have not arrived. "
            "Upload them (getProjectInfo gives fresh links) and start again.",
            code="parts_missing",
        )
    total = sum(received.values())
    if total != project.filesize:
        raise ApplicationError(
            f"The parts add up to {total} bytes but the project was created with "
            f"filesize {project.filesize}. Upload the parts again or create the "
            "project with the right size.",
            code="size_mismatch",
        )


class _PartsReader(io.RawIOBase):
    """The current upload's chunks read as one seekable file, without joining them."""

    def __init__(self, chunks: list[UploadChunk]) -> None:
        super().__init__()
        self._spans: list[tuple[int, UploadChunk]] = []
        offset = 0
        for chunk in chunks:
            self._spans.append((offset, chunk))
            offset += chunk.size
        self._size = offset
        self._pos = 0
        self._files: dict[str, BinaryIO] = {}

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}
        self._pos = max(0, base[whence] + offset)
        return self._pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]  # RawIOBase's buffer type
        for start, chunk in self._spans:
            if start <= self._pos < start + chunk.size:
                break
        else:
            return 0
        fh = self._files.get(chunk.storage_name)
        if fh is None:
            fh = self._files[chunk.storage_name] = default_storage.open(
                chunk.storage_name, "rb"
            )
        fh.seek(self._pos - start)
        data = fh.read(min(len(buffer), start + chunk.size - self._pos))
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def close(self) -> None:
        for fh in self._files.values():
            fh.close()
        super().close()


def parts_directory_check(*, project: Project, limits: ArchiveLimits) -> None:
    """Check the zip's central directory from the stored parts, without joining them.

    Only where parts are local files: reading the end of a part from S3 or
    Dropbox would fetch the whole part, so there the worker finds the same
    problems. Raises ApplicationError (400 naming the entries).
    """
    if storage.backend().remote:
        return
    chunks = list(
        UploadChunk.objects.filter(
            project=project, generation=project.upload_generation
        ).order_by("part", "offset")
    )
    try:
        with io.BufferedReader(_PartsReader(chunks), 1 << 16) as fh:
            photos = inspect_directory(fh, limits=limits)
    except ArchiveError as exc:
        raise ApplicationError(str(exc), code="bad_archive") from exc
    except FileNotFoundError as exc:
        raise ApplicationError(
            "A part is gone from storage; upload the parts again.",
            code="part_damaged",
        ) from exc
    if photos > project.photos:
        raise ApplicationError(
            f"The zip contains {photos} photos but the project was created for "
            f"{project.photos}. Create it again with photos={photos}.",
            code="photo_count",
        )


def parts_join(*, project: Project, dest: Path) -> str:
    """Write the current upload's parts, in order, into ``dest``; return its sha256.

    Every chunk is checked as it is read: its size and sha256 against what the
    server received, and on Dropbox its content hash against the one Dropbox
    reports.

    Raises:
        ApplicationError: a part is missing or damaged, or the sizes do not
            add up to ``filesize``.
    """
    parts_check(project=project, collect=False)
    backend = storage.backend()
    digest = hashlib.sha256()
    chunks = UploadChunk.objects.filter(
        project=project, generation=project.upload_generation
    ).order_by("part", "offset")
    with dest.open("wb") as out:
        for chunk in chunks:
            chunk_sha = hashlib.sha256()
            content_hash = backend.part_hasher()
            size = 0
            try:
                src = default_storage.open(chunk.storage_name, "rb")
            except FileNotFoundError as exc:
                raise _part_damaged(project, chunk.part, "it is gone") from exc
            with src:
                while data := src.read(1 << 20):
                    digest.update(data)
                    chunk_sha.update(data)
                    if content_hash is not None:
                        content_hash.update(data)
                    size += len(data)
                    out.write(data)
            if size != chunk.size:
                raise _part_damaged(
                    project, chunk.part, f"{size} bytes read, {chunk.size} received"
                )
            if chunk.sha256 and chunk_sha.hexdigest() != chunk.sha256:
                raise _part_damaged(project, chunk.part, "its sha256 differs")
            if content_hash is not None:
                reported = backend.stored_hash(chunk.storage_name)
                if reported != content_hash.hexdigest():
                    raise _part_damaged(
                        project, chunk.part, "its Dropbox content hash differs"
                    )
    return digest.hexdigest()


def upload_discard(*, project: Project) -> None:
    """Delete every uploaded chunk of the project (all generations), after commit.

    Parts sent straight to the backend go too, registered or not.
    """
    chunks = list(UploadChunk.objects.filter(project=project))
    _chunks_delete(chunks)
    backend = storage.backend()
    if backend.remote:
        prefix = storage.direct_prefix(project)  # Now: a deleted row has no id.
        transaction.on_commit(lambda: backend.direct_discard(prefix=prefix))


def uploads_part_limit() -> int:
    """The largest part accepted (``OPENSCAN_PART_MAX_BYTES``, capped for Dropbox
    links)."""
    return storage.backend().part_max_bytes()
