"""One capability object per storage backend, so callers ask instead of branching.

Each says what its backend can do beyond ``default_storage``: take parts
directly (and how large), hand out wire upload links, verify stored parts,
redirect downloads, and whether reading part of a stored file is cheap.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Literal

from django.conf import settings
from django.core.files.storage import default_storage
from django.utils.http import content_disposition_header

from projects.storage import direct
from projects.storage.direct import DirectObject, DirectUpload
from projects.storage.dropbox import (
    DropboxContentHasher,
    dropbox_direct_upload,
    dropbox_shared_link,
    dropbox_stored_hash,
)
from projects.storage.s3 import s3_direct_upload

if TYPE_CHECKING:
    from projects.models import Project

logger = logging.getLogger(__name__)

Kind = Literal["local", "s3", "dropbox"]
# The wire protocol's ulink alphabet: the firmware pastes links unquoted into a shell.
_WIRE_LINK = re.compile(r"\A[A-Za-z0-9/_.:-]+\Z")


class LocalBackend:
    """Files on this server's disk: every part comes through the server."""

    kind: Kind = "local"
    # Reading the end of a stored part fetches the whole part (S3, Dropbox).
    remote = False

    def direct_uploads_enabled(self) -> bool:
        return False

    def part_max_bytes(self) -> int:
        """The largest part accepted (``OPENSCAN_PART_MAX_BYTES`` unless capped)."""
        return int(settings.OPENSCAN_PART_MAX_BYTES)

    def part_limit_reason(self) -> str:
        """Why the part limit is below the setting, for messages ('' when it is not)."""
        return ""

    def direct_upload(
        self, *, project: Project, part: int, method: str = "POST"
    ) -> DirectUpload | None:
        """A target for sending ``part`` straight to the backend; None: use ours."""
        return None

    def wire_upload_link(self, *, project: Project, part: int) -> str | None:
        """A backend link to hand out as a wire ``ulink``; None: the server's own."""
        return None

    def direct_objects(
        self, *, project: Project, generation: int | None = None
    ) -> list[DirectObject]:
        """Parts of the upload that clients sent straight to the backend."""
        return []

    def direct_discard(self, *, prefix: str) -> None:
        """Delete every direct upload under ``prefix`` (a ``direct_prefix``)."""

    def part_hasher(self) -> DropboxContentHasher | None:
        """A hasher whose digest ``stored_hash`` reports; None: nothing to verify."""
        return None

    def stored_hash(self, name: str) -> str | None:
        return None

    def download_redirect_url(self, *, name: str, filename: str) -> str | None:
        """A URL serving ``name`` from the backend; None: stream it from here."""
        return None


class _RemoteBackend(LocalBackend):
    remote = True

    def direct_objects(
        self, *, project: Project, generation: int | None = None
    ) -> list[DirectObject]:
        gen = project.upload_generation if generation is None else generation
        return direct.direct_list(prefix=direct.direct_prefix(project, gen))

    def direct_discard(self, *, prefix: str) -> None:
        direct.direct_delete_all(prefix=prefix)


class S3Backend(_RemoteBackend):
    """S3 or an S3-compatible server: presigned targets and presigned downloads."""

    kind: Kind = "s3"

    def direct_uploads_enabled(self) -> bool:
        return bool(settings.OPENSCAN_S3_DIRECT_UPLOADS)

    def direct_upload(
        self, *, project: Project, part: int, method: str = "POST"
    ) -> DirectUpload | None:
        if not self.direct_uploads_enabled():
            return None
        return s3_direct_upload(
            direct.direct_name(project, part),
            method=method.upper(),
            max_size=self.part_max_bytes(),
        )

    def download_redirect_url(self, *, name: str, filename: str) -> str | None:
        # A presigned GET (AWS_QUERYSTRING_EXPIRE seconds) that saves as filename.
        if not settings.OPENSCAN_DOWNLOAD_REDIRECT:
            return None
        return default_storage.url(
            name,
            parameters={
                "ResponseContentDisposition": content_disposition_header(True, filename)
            },
        )


class DropboxBackend(_RemoteBackend):
    """Dropbox: one-time upload links, content hashes and shared-link downloads."""

    kind: Kind = "dropbox"

    def direct_uploads_enabled(self) -> bool:
        return bool(settings.OPENSCAN_DROPBOX_DIRECT_LINKS)

    def part_max_bytes(self) -> int:
        limit = super().part_max_bytes()
        if self.direct_uploads_enabled():
            limit = min(limit, int(settings.OPENSCAN_DROPBOX_PART_MAX_BYTES))
        return limit

    def part_limit_reason(self) -> str:
        if self.part_max_bytes() < int(settings.OPENSCAN_PART_MAX_BYTES):
            return (
                " (parts go straight to Dropbox, whose uploads are limited to 150 MiB)"
            )
        return ""

    def direct_upload(
        self, *, project: Project, part: int, method: str = "POST"
    ) -> DirectUpload | None:
        if not self.direct_uploads_enabled():
            return None
        return dropbox_direct_upload(
            direct.direct_name(project, part), max_size=self.part_max_bytes()
        )

    def wire_upload_link(self, *, project: Project, part: int) -> str | None:
        # S3 never gets here: a presigned URL holds ?/&/=, which the firmware's
        # unquoted shell command would break, so wire parts stream through us.
        link = self.direct_upload(project=project, part=part)
        if link is None:
            return None
        if not _WIRE_LINK.match(link.url):
            logger.warning(
                "Dropbox upload link has characters the firmware cannot take; using "
                "the server link"
            )
            return None
        return link.url

    def part_hasher(self) -> DropboxContentHasher | None:
        return DropboxContentHasher()

    def stored_hash(self, name: str) -> str | None:
        return dropbox_stored_hash(name)

    def download_redirect_url(self, *, name: str, filename: str) -> str | None:
        # The file's shared link with dl=1.
        if not settings.OPENSCAN_DOWNLOAD_REDIRECT:
            return None
        return dropbox_shared_link(name=name)
