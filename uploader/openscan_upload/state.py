"""The resume state file, `DIR/.openscan-upload.json`.

It is written atomically (temporary file, fsync, rename) after every step, so a
crash, Ctrl-C or power cut leaves either the previous or the next version on
disk, never half of one. It never holds the token, the server password or any
other secret: only what is needed to resume and what the server answered.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from . import __version__

STATE_FILE_NAME = ".openscan-upload.json"
SCHEMA_VERSION = 1
SECRET_KEYS = frozenset({"token", "password", "secret", "authorization", "auth"})

# Phases in order; a rerun continues from the phase it finds.
PHASES = (
    "new",
    "packed",
    "creating",
    "created",
    "uploaded",
    "started",
    "done",
    "failed",
)


def state_path(directory: Path) -> Path:
    return directory / STATE_FILE_NAME


def now_iso(ts: float | None = None) -> str:
    """UTC time as ISO 8601 with a Z suffix, second precision."""
    return time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if ts is None else ts)
    )


def public_server_url(url: str) -> str:
    """The server URL without user info, query or fragment, safe to store."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def scrub(value: Any) -> Any:
    """A copy of a server answer with anything secret-looking removed."""
    if isinstance(value, dict):
        return {
            key: scrub(item)
            for key, item in value.items()
            if str(key).lower() not in SECRET_KEYS
        }
    if isinstance(value, list):
        return [scrub(item) for item in value]
    return value


@dataclass
class ProjectRef:
    """The project on the server, as far as this upload knows it."""

    name: str | None = None
    id: str | None = None  # REST only
    created_at: str | None = None
    started_at: str | None = None
    credit_charged: int | None = None  # wire only


@dataclass
class UploadState:
    """Everything a rerun needs to resume; ``save_state`` writes it as JSON.

    ``parts`` and ``files`` stay plain dicts: they are written as they are.
    """

    server: str
    schema: int = SCHEMA_VERSION
    tool_version: str = __version__
    api: str | None = None  # "wire" or "rest" once chosen
    phase: str = "new"  # one of PHASES
    project: ProjectRef = field(default_factory=ProjectRef)
    files: list[dict[str, Any]] = field(default_factory=list)
    skipped_files: list[str] = field(default_factory=list)
    zip: dict[str, Any] | None = None
    parts: list[dict[str, Any]] = field(default_factory=list)
    server_answers: dict[str, Any] = field(default_factory=dict)
    updated_at: str = field(default_factory=lambda: now_iso())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UploadState:
        """Raises TypeError or ValueError when ``data`` is not a state."""
        if not isinstance(data, dict) or data.get("schema") != SCHEMA_VERSION:
            raise ValueError("unknown schema")
        fields = {key: value for key, value in data.items() if key != "project"}
        return cls(**fields, project=ProjectRef(**(data.get("project") or {})))


def new_state(server: str) -> UploadState:
    """A fresh state for a folder that has never been uploaded."""
    return UploadState(server=public_server_url(server))


def save_state(path: Path, state: UploadState) -> None:
    """Write the state atomically: a reader sees the old or the new file, whole.

    The temporary file lives in the same folder so the final rename never
    crosses file systems (os.replace is only atomic within one).
    """
    state.updated_at = now_iso()
    state.tool_version = __version__
    payload = json.dumps(scrub(state.to_dict()), indent=2, sort_keys=True) + "\n"
    fd, tmp_name = tempfile.mkstemp(
        prefix=".openscan-upload.", suffix=".tmp", dir=path.parent
    )
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        # Also on KeyboardInterrupt: never leave temporary files behind.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable on POSIX; Windows cannot open folders.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class StateError(Exception):
    """The state file exists but cannot be used."""


def load_state(path: Path) -> UploadState | None:
    """The saved state, or None when there is none.

    A file that is not valid JSON or has an unknown schema is moved aside (kept
    for inspection) and None is returned, so the run starts clean instead of
    crashing.

    Raises:
        StateError: the file was unreadable and could not be moved aside.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        state = UploadState.from_dict(json.loads(text))
    except (TypeError, ValueError):
        backup = path.with_name(f"{path.name}.broken-{int(time.time())}")
        try:
            os.replace(path, backup)
        except OSError as exc:
            raise StateError(
                f"{path} is damaged and could not be moved aside: {exc}"
            ) from exc
        return None
    return state


def bytes_done(state: UploadState) -> int:
    return sum(
        part["size"] if part.get("state") == "done" else int(part.get("received") or 0)
        for part in state.parts
    )
