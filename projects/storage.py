"""What the storage backends add beyond ``default_storage``: direct transfers.

``OPENSCAN_STORAGE`` picks the backend (settings). Everything else in the
project reads and writes through ``default_storage``; this module holds the
few things a plain Django storage cannot express:

* direct uploads: a part sent straight to the bucket (S3 presigned POST or PUT)
  or to Dropbox (a one-time temporary upload link), found and size-checked when
  the project starts (``direct_parts_collect``);
* the Dropbox content hash, checked for every part when the project starts;
* download redirects: a presigned S3 GET, or a Dropbox shared link;
* ``DropboxStorage``: django-storages' Dropbox backend with streaming reads,
  tolerant deletes and paginated listings.

Direct uploads land at ``<project prefix>/direct/<generation>/<part>.bin``: a
name that depends only on the part, so a second upload of the part replaces
the first (the last write wins, as with the wire links).
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import json
import logging
import re
import tempfile
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from django.conf import settings
from django.core.cache import cache
from django.core.files.base import File
from django.core.files.storage import default_storage
from django.utils import timezone
from django.utils.http import content_disposition_header
from dropbox.exceptions import ApiError
from dropbox.files import (
    CommitInfo,
    FileMetadata,
    FolderMetadata,
    UploadSessionCursor,
    WriteMode,
)
from storages.backends.dropbox import DropboxFile
from storages.backends.dropbox import DropboxStorage as _BaseDropboxStorage
from storages.backends.s3 import S3Storage
from storages.utils import clean_name

if TYPE_CHECKING:
    from projects.models import Project

logger = logging.getLogger(__name__)

Kind = Literal["local", "s3", "dropbox"]

# Dropbox documents upload() (and a temporary upload link is "a delayed
# upload()") as "Do not use this to upload a file larger than 150 MiB".
DROPBOX_UPLOAD_MAX_BYTES = 150 * 1024 * 1024
DROPBOX_HASH_BLOCK = 4 * 1024 * 1024
# SigV4 presigned URLs live at most 7 days; Dropbox upload links at most 4 hours.
S3_PRESIGN_MAX_SECONDS = 7 * 24 * 3600
DROPBOX_LINK_MAX_SECONDS = 4 * 3600
# The wire protocol's ulink alphabet: the firmware pastes links unquoted into a shell.
_WIRE_LINK = re.compile(r"\A[A-Za-z0-9/_.:-]+\Z")
_DIRECT_NAME = re.compile(r"\A(\d{4})\.bin\Z")


def storage_kind() -> Kind:
    """Which kind of backend ``default_storage`` is now (tests swap it at run time)."""
    if isinstance(default_storage, S3Storage):
        return "s3"
    if isinstance(default_storage, _BaseDropboxStorage):
        return "dropbox"
    return "local"


def direct_uploads_enabled() -> bool:
    kind = storage_kind()
    if kind == "s3":
        return bool(settings.OPENSCAN_S3_DIRECT_UPLOADS)
    if kind == "dropbox":
        return bool(settings.OPENSCAN_DROPBOX_DIRECT_LINKS)
    return False


def part_max_bytes() -> int:
    """The largest part accepted: ``OPENSCAN_PART_MAX_BYTES``, capped where Dropbox links are used."""
    limit = int(settings.OPENSCAN_PART_MAX_BYTES)
    if storage_kind() == "dropbox" and settings.OPENSCAN_DROPBOX_DIRECT_LINKS:
        limit = min(limit, int(settings.OPENSCAN_DROPBOX_PART_MAX_BYTES))
    return limit


def part_limit_reason() -> str:
    """Why the part limit is what it is, for error messages ('' when it is the plain setting)."""
    if part_max_bytes() < int(settings.OPENSCAN_PART_MAX_BYTES):
        return " (parts go straight to Dropbox, whose uploads are limited to 150 MiB)"
    return ""


def direct_name(project: Project, part: int, generation: int | None = None) -> str:
    gen = project.upload_generation if generation is None else generation
    return f"{direct_prefix(project, gen)}/{part:04d}.bin"


def direct_prefix(project: Project, generation: int | None = None) -> str:
    if generation is None:
        return f"{project.storage_prefix}/direct"
    return f"{project.storage_prefix}/direct/{generation}"


# --- Direct uploads -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DirectUpload:
    """Where and how a client sends one part without passing through this server.

    ``encoding`` is ``multipart`` (an HTML-form POST: ``fields`` first, then the
    part as the form field ``file``) or ``raw`` (the part is the whole body,
    sent with ``headers``).
    """

    method: str
    url: str
    encoding: Literal["multipart", "raw"]
    expires_at: datetime.datetime
    max_size: int
    one_time: bool
    fields: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["expires_at"] = self.expires_at.isoformat()
        return data


def _link_seconds(maximum: int) -> int:
    return max(60, min(int(settings.OPENSCAN_UPLOAD_LINK_SECONDS), maximum))


def direct_upload_url(
    *, project: Project, part: int, method: str = "POST"
) -> dict[str, Any] | None:
    """A direct upload target for ``part`` of the project's current upload, or None.

    None when the backend (or its setting) offers no direct uploads; the part
    then goes to the server's own upload link. The caller checks that the
    project accepts parts.
    """
    if not direct_uploads_enabled():
        return None
    kind = storage_kind()
    name = direct_name(project, part)
    if kind == "s3":
        return _s3_direct_upload(name, method=method.upper()).as_dict()
    return _dropbox_direct_upload(name).as_dict()


def wire_upload_link(*, project: Project, part: int) -> str | None:
    """A Dropbox temporary upload link to hand out as a wire ``ulink``, or None.

    Only with ``OPENSCAN_DROPBOX_DIRECT_LINKS`` on a Dropbox backend. S3 never
    gets here: a presigned URL holds ``?``/``&``/``=``, which the firmware's
    unquoted shell command would break, so wire parts stream through the server.
    """
    if storage_kind() != "dropbox" or not settings.OPENSCAN_DROPBOX_DIRECT_LINKS:
        return None
    link = _dropbox_direct_upload(direct_name(project, part)).url
    if not _WIRE_LINK.match(link):
        logger.warning(
            "Dropbox upload link has characters the firmware cannot take; using the server link"
        )
        return None
    return link


def _credential_expiry(client: Any) -> datetime.datetime | None:
    # A URL signed with temporary (role/STS) credentials stops working when they
    # expire, whatever its own expiry says.
    creds = getattr(getattr(client, "_request_signer", None), "_credentials", None)
    expiry = getattr(creds, "_expiry_time", None)
    return expiry if isinstance(expiry, datetime.datetime) else None


def _s3_direct_upload(name: str, *, method: str) -> DirectUpload:
    storage: S3Storage = default_storage  # type: ignore[assignment]  # checked by storage_kind()
    client = storage.connection.meta.client
    key = storage._normalize_name(clean_name(name))  # the key S3Storage itself uses
    seconds = _link_seconds(S3_PRESIGN_MAX_SECONDS)
    limit = part_max_bytes()
    expires_at = timezone.now() + datetime.timedelta(seconds=seconds)
    creds_expiry = _credential_expiry(client)
    if creds_expiry is not None:
        expires_at = min(expires_at, creds_expiry)
    if method == "PUT":
        url = client.generate_presigned_url(
            "put_object",
            Params={"Bucket": storage.bucket_name, "Key": key},
            ExpiresIn=seconds,
            HttpMethod="PUT",
        )
        return DirectUpload(
            method="PUT",
            url=url,
            encoding="raw",
            expires_at=expires_at,
            max_size=limit,
            one_time=False,
        )
    post = client.generate_presigned_post(
        Bucket=storage.bucket_name,
        Key=key,
        Conditions=[["content-length-range", 1, limit]],
        ExpiresIn=seconds,
    )
    return DirectUpload(
        method="POST",
        url=post["url"],
        encoding="multipart",
        fields=dict(post["fields"]),
        expires_at=expires_at,
        max_size=limit,
        one_time=False,
    )


def _dropbox_direct_upload(name: str) -> DirectUpload:
    storage: DropboxStorage = default_storage  # type: ignore[assignment]  # checked by storage_kind()
    seconds = _link_seconds(DROPBOX_LINK_MAX_SECONDS)
    commit = CommitInfo(
        path=storage._full_path(name), mode=WriteMode.overwrite, autorename=False
    )
    result = storage.client.files_get_temporary_upload_link(
        commit_info=commit, duration=float(seconds)
    )
    return DirectUpload(
        method="POST",
        url=result.link,
        encoding="raw",
        headers={"Content-Type": "application/octet-stream"},
        expires_at=timezone.now() + datetime.timedelta(seconds=seconds),
        max_size=part_max_bytes(),
        one_time=True,
    )


@dataclass(frozen=True, slots=True)
class DirectObject:
    part: int
    name: str
    size: int


def direct_objects(
    *, project: Project, generation: int | None = None
) -> list[DirectObject]:
    """Parts of the project's upload that clients sent straight to the backend."""
    if storage_kind() == "local":
        return []
    prefix = direct_prefix(
        project, project.upload_generation if generation is None else generation
    )
    try:
        _dirs, files = default_storage.listdir(prefix)
    except FileNotFoundError:
        return []
    found = []
    for filename in sorted(files):
        match = _DIRECT_NAME.match(filename)
        if match is None:
            continue
        name = f"{prefix}/{filename}"
        found.append(
            DirectObject(
                part=int(match.group(1)), name=name, size=default_storage.size(name)
            )
        )
    return found


def direct_discard(*, prefix: str) -> None:
    """Delete every direct upload under ``prefix`` (a ``direct_prefix``), all generations."""
    if storage_kind() == "local":
        return
    try:
        generations, files = default_storage.listdir(prefix)
    except FileNotFoundError:
        return
    for filename in files:
        default_storage.delete(f"{prefix}/{filename}")
    for gen in generations:
        with contextlib.suppress(FileNotFoundError):
            _dirs, gen_files = default_storage.listdir(f"{prefix}/{gen}")
            for filename in gen_files:
                default_storage.delete(f"{prefix}/{gen}/{filename}")


# --- The Dropbox content hash ------------------------------------------------


class DropboxContentHasher:
    """Dropbox's ``content_hash``: SHA-256 of each 4 MiB block, then SHA-256 of their concatenation.

    Feed it any slicing of the bytes with ``update``; ``hexdigest`` is what
    ``files/get_metadata`` reports as ``content_hash``.
    """

    def __init__(self) -> None:
        self._overall = hashlib.sha256()
        self._block = hashlib.sha256()
        self._block_pos = 0

    def update(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            take = min(len(view), DROPBOX_HASH_BLOCK - self._block_pos)
            self._block.update(view[:take])
            self._block_pos += take
            view = view[take:]
            if self._block_pos == DROPBOX_HASH_BLOCK:
                self._overall.update(self._block.digest())
                self._block = hashlib.sha256()
                self._block_pos = 0

    def hexdigest(self) -> str:
        overall = self._overall.copy()
        if self._block_pos:
            overall.update(self._block.digest())
        return overall.hexdigest()


def dropbox_content_hash(data: bytes) -> str:
    hasher = DropboxContentHasher()
    hasher.update(data)
    return hasher.hexdigest()


def dropbox_stored_hash(name: str) -> str | None:
    """The content hash Dropbox reports for ``name``; None on other backends."""
    if storage_kind() != "dropbox":
        return None
    storage: DropboxStorage = default_storage  # type: ignore[assignment]  # checked by storage_kind()
    metadata = storage.client.files_get_metadata(storage._full_path(name))
    return getattr(metadata, "content_hash", None)


# --- Downloads ----------------------------------------------------------------


def download_redirect_url(*, name: str, filename: str) -> str | None:
    """A URL that serves ``name`` straight from the backend, or None to stream it here.

    S3: a presigned GET (``AWS_QUERYSTRING_EXPIRE`` seconds) that downloads as
    ``filename``. Dropbox: the file's shared link with ``dl=1``.
    """
    if not settings.OPENSCAN_DOWNLOAD_REDIRECT:
        return None
    kind = storage_kind()
    if kind == "s3":
        return default_storage.url(
            name,
            parameters={
                "ResponseContentDisposition": content_disposition_header(True, filename)
            },
        )
    if kind == "dropbox":
        return dropbox_shared_link(name=name)
    return None


def dropbox_shared_link(*, name: str) -> str:
    """A public Dropbox shared link that downloads ``name`` (created once, then cached)."""
    storage: DropboxStorage = default_storage  # type: ignore[assignment]  # checked by storage_kind()
    path = storage._full_path(name)
    key = "dropbox-shared-link:" + hashlib.sha256(path.encode()).hexdigest()
    url = cache.get(key)
    if url is None:
        try:
            url = storage.client.sharing_create_shared_link_with_settings(path).url
        except ApiError as exc:
            error = exc.error
            if not (error.is_shared_link_already_exists()):
                raise
            existing = error.get_shared_link_already_exists()
            if existing is not None and existing.is_metadata():
                url = existing.get_metadata().url
            else:
                links = storage.client.sharing_list_shared_links(
                    path=path, direct_only=True
                ).links
                if not links:
                    raise
                url = links[0].url
        cache.set(key, url, 24 * 3600)
    return _force_download(url)


def _force_download(url: str) -> str:
    if re.search(r"[?&]dl=0", url):
        return re.sub(r"([?&])dl=0", r"\1dl=1", url)
    if re.search(r"[?&]dl=1", url):
        return url
    return url + ("&" if "?" in url else "?") + "dl=1"


# --- The Dropbox backend ------------------------------------------------------


def _is_not_found(exc: ApiError) -> bool:
    error = exc.error
    for attr in ("get_path_lookup", "get_path"):
        getter = getattr(error, attr, None)
        is_tag = getattr(error, "is_" + attr.removeprefix("get_"), None)
        if getter and is_tag and is_tag():
            lookup = getter()
            return bool(getattr(lookup, "is_not_found", lambda: False)())
    return False


class _StreamingDropboxFile(DropboxFile):
    """Downloads into a temporary file that spills to disk, never all in memory."""

    def _get_file(self) -> Any:
        if self._file is None:
            self._file = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)
            _metadata, response = self._storage.client.files_download(self.name)
            with contextlib.closing(response):
                for block in response.iter_content(1 << 20):
                    self._file.write(block)
            self._file.seek(0)
        return self._file

    file = property(_get_file, DropboxFile._set_file)


class DropboxStorage(_BaseDropboxStorage):
    """django-storages' Dropbox backend, fit for gigabyte zips and idempotent clean-up.

    Reads stream to a temporary file (the base class holds a whole download in
    memory); a missing file deletes quietly and lists as FileNotFoundError
    (clean-up runs twice); listings follow ``has_more``; uploads end on the
    first empty read, so a body whose length is only an upper bound works.
    """

    def _open(self, name: str, mode: str = "rb") -> File:
        return _StreamingDropboxFile(self._full_path(name), self)

    def delete(self, name: str) -> None:
        try:
            self.client.files_delete_v2(self._full_path(name))
        except ApiError as exc:
            if not _is_not_found(exc):
                raise

    def listdir(self, path: str) -> tuple[list[str], list[str]]:
        full_path = self._full_path(path)
        if full_path == "/":
            full_path = ""
        try:
            result = self.client.files_list_folder(full_path)
        except ApiError as exc:
            if _is_not_found(exc):
                raise FileNotFoundError(path) from exc
            raise
        directories: list[str] = []
        files: list[str] = []
        while True:
            for entry in result.entries:
                if isinstance(entry, FolderMetadata):
                    directories.append(entry.name)
                elif isinstance(entry, FileMetadata):
                    files.append(entry.name)
            if not result.has_more:
                return directories, files
            result = self.client.files_list_folder_continue(result.cursor)

    def _save(self, name: str, content: File) -> str:
        path = self._full_path(name)
        mode = WriteMode(self.write_mode)
        content.open()
        block = content.read(self.CHUNK_SIZE)
        following = content.read(self.CHUNK_SIZE) if block else b""
        if not following:
            self.client.files_upload(block, path, mode=mode)
        else:
            session = self.client.files_upload_session_start(block)
            offset = len(block)
            block = following
            while True:
                following = content.read(self.CHUNK_SIZE)
                cursor = UploadSessionCursor(
                    session_id=session.session_id, offset=offset
                )
                if not following:
                    self.client.files_upload_session_finish(
                        block, cursor, CommitInfo(path=path, mode=mode)
                    )
                    break
                self.client.files_upload_session_append_v2(block, cursor)
                offset += len(block)
                block = following
        content.close()
        return name


def s3_post_policy(fields: dict[str, str]) -> dict[str, Any]:
    """The decoded policy document of a presigned POST (for checks and tests)."""
    return json.loads(base64.b64decode(fields["policy"]))
