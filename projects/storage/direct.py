"""Direct uploads: parts a client sends straight to the backend, found by name.

They land at ``<project prefix>/direct/<generation>/<part>.bin``: a name that
depends only on the part, so a second upload of the part replaces the first
(the last write wins, as with the wire links).
"""

from __future__ import annotations

import contextlib
import datetime
import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from django.conf import settings
from django.core.files.storage import default_storage

if TYPE_CHECKING:
    from projects.models import Project

_DIRECT_NAME = re.compile(r"\A(\d{4})\.bin\Z")


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


@dataclass(frozen=True, slots=True)
class DirectObject:
    part: int
    name: str
    size: int


def link_seconds(maximum: int) -> int:
    """How long a handed-out link lives: the setting, within the backend's maximum."""
    return max(60, min(int(settings.OPENSCAN_UPLOAD_LINK_SECONDS), maximum))


def direct_name(project: Project, part: int, generation: int | None = None) -> str:
    gen = project.upload_generation if generation is None else generation
    return f"{direct_prefix(project, gen)}/{part:04d}.bin"


def direct_prefix(project: Project, generation: int | None = None) -> str:
    if generation is None:
        return f"{project.storage_prefix}/direct"
    return f"{project.storage_prefix}/direct/{generation}"


def direct_list(*, prefix: str) -> list[DirectObject]:
    """The direct uploads of one generation (``prefix`` from ``direct_prefix``)."""
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


def direct_delete_all(*, prefix: str) -> None:
    """Delete every direct upload under ``prefix`` (all generations)."""
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
