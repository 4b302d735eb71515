"""Dropbox: direct upload links, the content hash, shared links and the backend.

``DropboxStorage`` is django-storages' Dropbox backend with streaming reads,
tolerant deletes and paginated listings.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import re
import tempfile
from typing import Any

from django.core.cache import cache
from django.core.files.base import File
from django.core.files.storage import default_storage
from django.utils import timezone
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

from projects.storage.direct import DirectUpload, link_seconds

# Dropbox documents upload() (and a temporary upload link is "a delayed
# upload()") as "Do not use this to upload a file larger than 150 MiB".
DROPBOX_UPLOAD_MAX_BYTES = 150 * 1024 * 1024
DROPBOX_HASH_BLOCK = 4 * 1024 * 1024
# Dropbox upload links live at most 4 hours.
DROPBOX_LINK_MAX_SECONDS = 4 * 3600


def dropbox_direct_upload(name: str, *, max_size: int) -> DirectUpload:
    storage: DropboxStorage = default_storage  # type: ignore[assignment]  # by backend()
    seconds = link_seconds(DROPBOX_LINK_MAX_SECONDS)
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
        max_size=max_size,
        one_time=True,
    )


class DropboxContentHasher:
    """Dropbox's ``content_hash``: SHA-256 of each 4 MiB block, then SHA-256 of their
    concatenation.

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


def dropbox_stored_hash(name: str) -> str | None:
    """The content hash Dropbox reports for ``name``."""
    storage: DropboxStorage = default_storage  # type: ignore[assignment]  # by backend()
    metadata = storage.client.files_get_metadata(storage._full_path(name))
    return getattr(metadata, "content_hash", None)


def dropbox_shared_link(*, name: str) -> str:
    """A public Dropbox shared link that downloads ``name``
    (created once, then cached)."""
    storage: DropboxStorage = default_storage  # type: ignore[assignment]  # by backend()
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
            # Kept open as the File's own handle; closed with it.
            self._file = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115
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
