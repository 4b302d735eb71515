"""An upload session: one folder's state, the clients, and the phases as methods.

Phases run in order (pack, create, upload the parts, start); each saves the
state before it returns, so a rerun continues after the last confirmed step.
"""

from __future__ import annotations

import argparse
import calendar
import contextlib
import hashlib
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .client import (
    LinkExpiredError,
    NotFoundError,
    RestClient,
    WireClient,
)
from .exits import (
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_REJECTED,
    EXIT_USAGE,
    EXIT_VALIDATION,
    ExitError,
)
from .follow import follow
from .options import (
    choose_api,
    folder_arg,
    make_policy,
    require_server,
    require_token,
    run_validation,
    token_info_or_none,
)
from .packing import PackingError, build_zip, hash_ranges, split_parts
from .report import Output
from .state import (
    StateError,
    UploadState,
    bytes_done,
    load_state,
    new_state,
    now_iso,
    public_server_url,
    save_state,
    scrub,
    state_path,
)
from .tagging import MANIFEST_NAME, Angles, load_manifest
from .validate import ImageInfo, check_limits

# Upload links are valid for 4 hours; ask again a little before that.
LINK_MAX_AGE_SECONDS = 4 * 3600 - 15 * 60


class UploadSession:
    """One folder's upload in progress; the phases are its methods."""

    def __init__(
        self,
        *,
        output: Output,
        state: UploadState,
        path: Path,
        wire: WireClient,
        rest: RestClient | None,
    ) -> None:
        self.output = output
        self.state = state
        self.path = path
        self.wire = wire
        self.rest = rest

    def save(self) -> None:
        save_state(self.path, self.state)

    def pack(
        self,
        images: list[ImageInfo],
        name: str,
        zip_path: Path,
        part_size: int,
        angles: dict[str, Angles],
    ) -> None:
        """Build (or reuse) the zip and plan its parts.

        A resumed upload must get the same bytes as the first run.
        """
        known = self.state.zip
        if known and zip_path.exists() and zip_path.stat().st_size == known["size"]:
            size, digest, _ = hash_ranges(zip_path, [])
            if digest == known["sha256"]:
                self.output.say(f"Reusing {zip_path} ({size:,} bytes).")
                return
        total = sum(image.size for image in images)
        try:
            with self.output.bar("Zipping", total) as bar:
                packed = build_zip(images, name, zip_path, angles, progress=bar.update)
        except PackingError as exc:
            raise ExitError(EXIT_VALIDATION, str(exc)) from exc
        except OSError as exc:
            raise ExitError(
                EXIT_USAGE,
                f"Cannot write the zip to {zip_path.parent}: {exc}. Choose another "
                "place with --work-dir.",
            ) from exc
        if known:
            if packed.sha256 != known["sha256"]:
                raise ExitError(
                    EXIT_VALIDATION,
                    "Rebuilding the zip gave different bytes than the upload that is "
                    "in progress (another tool version?). Run with --restart to "
                    "start a new project.",
                )
            return
        parts = split_parts(zip_path, part_size)
        self.state.zip = {
            "name": name,
            "size": packed.size,
            "sha256": packed.sha256,
            "part_size": part_size,
            "entries": len(packed.entries),
        }
        self.state.parts = [
            {
                "index": part.index,
                "offset": part.offset,
                "size": part.size,
                "sha256": part.sha256,
                "state": "pending",
                "received": 0,
                "link": None,
                "link_issued_at": None,
            }
            for part in parts
        ]
        self.state.phase = "packed"
        self.save()
        self.output.event(
            "packed", zip_size=packed.size, parts=len(parts), sha256=packed.sha256
        )
        self.output.say(
            f"Packed {len(images)} photo(s) into {packed.size:,} bytes, {len(parts)} "
            "part(s)."
        )

    def create(self, preset: str | None) -> None:
        """Create the project once.

        The state says 'creating' before the request, so a crash between the
        server's answer and the next save is retried with the same name, which
        the server answers without charging again.
        """
        name = self.state.project.name
        parts = self.state.parts
        self.state.phase = "creating"
        self.save()
        if self.rest is None:
            answer = self.wire.create_project(
                name, len(self.state.files), len(parts), self.state.zip["size"]
            )
            issued = now_iso()
            for part, link in zip(parts, answer["ulink"]):
                part["link"], part["link_issued_at"] = link, issued
            self.state.project.credit_charged = answer.get("credit")
            self.state.server_answers["createProject"] = {
                key: value for key, value in answer.items() if key != "ulink"
            }
        else:
            answer = self.rest.create_project(
                name, len(self.state.files), self.state.zip["size"], len(parts), preset
            )
            self.state.project.id = str(answer["id"])
            for part, remote in zip(parts, answer["parts"]):
                part["link"] = self.rest.url(
                    str(
                        remote.get("upload_url")
                        or self.rest.part_url(answer["id"], part["index"])
                    )
                )
                part["received"] = int(remote.get("received") or 0)
            self.state.server_answers["create"] = scrub(answer)
        self.state.project.created_at = now_iso()
        self.state.phase = "created"
        self.save()
        self.output.event(
            "created",
            project=name,
            id=self.state.project.id,
            credit=self.state.project.credit_charged,
        )
        self.output.say(
            f"Created project {name}"
            + (f" (id {self.state.project.id})" if self.state.project.id else "")
            + "."
        )

    @staticmethod
    def _link_is_fresh(part: dict[str, Any]) -> bool:
        issued = part.get("link_issued_at")
        if not part.get("link") or not issued:
            return False
        try:
            issued_ts = calendar.timegm(time.strptime(issued, "%Y-%m-%dT%H:%M:%SZ"))
        except ValueError:
            return False
        return time.time() - issued_ts < LINK_MAX_AGE_SECONDS

    def refresh_links(self) -> None:
        """New upload links for an existing project, never creating or charging anew."""
        name = self.state.project.name
        parts = self.state.parts
        try:
            info = self.wire.project_info(name)
        except NotFoundError as exc:
            raise ExitError(
                EXIT_REJECTED,
                f"The server no longer knows project {name} (it may have expired). "
                "Run again with --restart to upload it as a new project.",
            ) from exc
        links = info.get("ulink")
        if (
            info.get("status") != "created"
            or not isinstance(links, list)
            or len(links) != len(parts)
        ):
            # createProject on a project still in 'created' hands out fresh links and
            # does not charge again.
            links = self.wire.create_project(
                name, len(self.state.files), len(parts), self.state.zip["size"]
            )["ulink"]
        issued = now_iso()
        for part, link in zip(parts, links):
            part["link"], part["link_issued_at"] = link, issued
        self.save()
        self.output.event("links_refreshed", project=name)

    def upload_parts(self, zip_path: Path) -> None:
        parts = self.state.parts
        total = self.state.zip["size"]
        already = bytes_done(self.state)
        pending = [part for part in parts if part["state"] != "done"]
        if already:
            self.output.say(
                f"Resuming: {len(parts) - len(pending)} of {len(parts)} part(s), "
                f"{already:,} of {total:,} bytes already on the server."
            )
        with self.output.bar("Uploading", total, initial=already) as bar:
            for part in pending:
                self.output.event("part_start", index=part["index"], size=part["size"])
                if self.rest is None:
                    self._upload_wire_part(zip_path, part, bar.update)
                else:
                    server_offset = self.rest.part_offset(part["link"])
                    bar.update(server_offset - int(part.get("received") or 0))
                    self.rest.upload_part(
                        part["link"],
                        zip_path,
                        part["offset"],
                        part["size"],
                        bar.update,
                        received=server_offset,
                    )
                part["state"], part["received"] = "done", part["size"]
                part["confirmed_at"] = now_iso()
                self.save()
                self.output.event("part_done", index=part["index"], size=part["size"])
        self.state.phase = "uploaded"
        self.save()

    def _upload_wire_part(
        self,
        zip_path: Path,
        part: dict[str, Any],
        progress: Callable[[int], None],
    ) -> None:
        if not self._link_is_fresh(part):
            self.refresh_links()
        try:
            self.wire.upload_part(
                part["link"], zip_path, part["offset"], part["size"], progress
            )
        except LinkExpiredError:
            self.output.say(
                f"  The upload link of part {part['index'] + 1} expired; asking for "
                "a new one."
            )
            self.refresh_links()
            self.wire.upload_part(
                part["link"], zip_path, part["offset"], part["size"], progress
            )

    def start(self) -> None:
        name = self.state.project.name
        if self.rest is None:
            answer = self.wire.start_project(name)
            self.state.server_answers["startProject"] = answer
        else:
            answer = self.rest.start(self.state.project.id)
            self.state.server_answers["start"] = scrub(answer)
        self.state.phase = "started"
        self.state.project.started_at = now_iso()
        self.save()
        self.output.event("started", project=name, id=self.state.project.id)
        self.output.say(f"Uploaded and started project {name}.")


def cmd_upload(args: argparse.Namespace, output: Output) -> int:
    directory = folder_arg(args.directory)
    server = require_server(args)
    token = require_token(args)
    if args.download is not None:
        args.wait = True
    path = state_path(directory)
    try:
        state = None if args.restart else load_state(path)
    except StateError as exc:
        raise ExitError(EXIT_USAGE, str(exc)) from exc
    if args.restart and path.exists():
        previous = load_state(path)
        if previous is not None and previous.phase in (
            "creating",
            "created",
            "uploaded",
        ):
            output.warn(
                f"--restart: project {previous.project.name} is left unfinished on "
                "the server; a new project is created."
            )
    if state is not None and state.server != public_server_url(server):
        raise ExitError(
            EXIT_USAGE,
            f"This folder's upload went to {state.server}; use --restart to upload "
            f"it to {public_server_url(server)} instead.",
        )
    if (
        state is not None
        and args.project
        and state.project.name not in (None, args.project)
    ):
        raise ExitError(
            EXIT_USAGE,
            f"This folder is being uploaded as {state.project.name}; use --restart "
            "to upload it under another name.",
        )
    policy = make_policy(args, output)
    if state is None:
        state = new_state(server)
    elif state.phase != "new":
        output.say(f"Resuming project {state.project.name} (phase: {state.phase}).")
    wire = WireClient(server, token, policy)

    if state.phase in ("started", "done", "failed"):
        output.say(f"Project {state.project.name} was already uploaded and started.")
        if not args.wait:
            _say_next_steps(output, directory)
            return EXIT_PARTIAL if state.skipped_files else EXIT_OK
        return follow(args, output, state, server, token, policy, directory, path)

    api, api_info = choose_api(args, server, policy, state.api)
    rest = (
        RestClient(server, token, policy, chunk_size=args.chunk_size)
        if api == "rest"
        else None
    )
    session = UploadSession(output=output, state=state, path=path, wire=wire, rest=rest)
    created = state.phase in ("created", "uploaded")
    token_info = token_info_or_none(wire)
    if token_info is not None:
        output.event(
            "token",
            credit=token_info.credit,
            limit_photos=token_info.limit_photos,
            limit_filesize=token_info.limit_filesize,
        )

    result, report_path = run_validation(args, output, directory, None)
    selected = result.usable(args.strict)
    limit_issues = check_limits(selected, token_info, check_credit=not created)
    if limit_issues or result.set_errors(args.strict):
        for issue in limit_issues:
            output.warn(f"{issue.kind}: {issue.message}")
        raise ExitError(
            EXIT_VALIDATION,
            f"The set cannot be uploaded as it is. Details: {report_path}",
        )
    bad = sorted(result.bad_files(args.strict))
    if bad and not args.skip_bad:
        raise ExitError(
            EXIT_VALIDATION,
            f"{len(bad)} photo(s) have problems (see above and {report_path}). Fix "
            f"them, or rerun with --skip-bad to upload the other {len(selected)}.",
        )
    if bad:
        output.say(
            f"--skip-bad: leaving out {len(bad)} photo(s), uploading {len(selected)}."
        )

    files = [
        {"name": image.name, "size": image.size, "sha256": image.sha256}
        for image in sorted(selected, key=lambda item: item.name)
    ]
    if state.phase in ("creating", "created", "uploaded"):
        _require_same_files(state.files, files)
    elif state.files != files or (state.zip or {}).get("part_size") != args.part_size:
        # Nothing is on the server yet: plan again from the current photos.
        state.zip, state.parts, state.phase = None, [], "new"
    state.api = api
    state.files = files
    state.skipped_files = bad
    if not state.project.name:
        state.project.name = project_name(args.project, directory)
    name = state.project.name

    part_size = args.part_size
    if api_info and isinstance(api_info.get("max_part_size"), int):
        part_size = min(part_size, api_info["max_part_size"])
    angles = _angles(args, directory)
    zip_path = _work_dir(args, directory) / name
    session.pack(selected, name, zip_path, part_size, angles)
    zip_issues = check_limits(
        selected, token_info, zip_size=state.zip["size"], check_credit=not created
    )
    if zip_issues:
        raise ExitError(
            EXIT_VALIDATION, "\n".join(f"{i.kind}: {i.message}" for i in zip_issues)
        )

    if state.phase in ("packed", "creating"):
        session.create(args.preset)
    if state.phase == "created":
        session.upload_parts(zip_path)
    if state.phase == "uploaded":
        session.start()
        _remove_zip(zip_path)
    code = EXIT_PARTIAL if bad else EXIT_OK
    if args.wait:
        followed = follow(args, output, state, server, token, policy, directory, path)
        if followed != EXIT_OK:
            return followed
    else:
        _say_next_steps(output, directory)
    if bad:
        output.say(
            f"Done, but {len(bad)} photo(s) were left out (exit code {EXIT_PARTIAL})."
        )
    return code


def project_name(requested: str | None, directory: Path) -> str:
    """A wire-compatible project name: ends in .zip, safe characters, unique per run."""
    if requested:
        base = requested[:-4] if requested.lower().endswith(".zip") else requested
    else:
        stem = re.sub(r"[^A-Za-z0-9_-]+", "-", directory.name).strip("-") or "scan"
        base = f"{stem[:60]}-{int(time.time() * 1000)}"
    return f"{base}.zip"


def _require_same_files(
    before: list[dict[str, Any]], now: list[dict[str, Any]]
) -> None:
    old = {item["name"]: item["sha256"] for item in before}
    new = {item["name"]: item["sha256"] for item in now}
    if old == new:
        return
    added = sorted(set(new) - set(old))
    removed = sorted(set(old) - set(new))
    changed = sorted(name for name in set(old) & set(new) if old[name] != new[name])
    details = "; ".join(
        f"{label}: {', '.join(names[:5])}"
        for label, names in (
            ("added", added),
            ("removed", removed),
            ("changed", changed),
        )
        if names
    )
    raise ExitError(
        EXIT_VALIDATION,
        f"The photos changed since this upload began ({details}). Put them back to "
        "resume, or run with --restart to upload the new set as a new project (it "
        "is charged again).",
    )


def _angles(args: argparse.Namespace, directory: Path) -> dict[str, Angles]:
    manifest = args.manifest or directory / MANIFEST_NAME
    if args.manifest is None and not manifest.exists():
        return {}
    try:
        return load_manifest(manifest)
    except (OSError, ValueError) as exc:
        raise ExitError(
            EXIT_VALIDATION, f"The manifest {manifest} cannot be read: {exc}"
        ) from exc


def _work_dir(args: argparse.Namespace, directory: Path) -> Path:
    if args.work_dir is not None:
        return Path(args.work_dir)
    key = hashlib.sha256(str(directory).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / "openscan-upload" / key


def _remove_zip(zip_path: Path) -> None:
    for candidate in (zip_path, zip_path.with_name(zip_path.name + ".partial")):
        with contextlib.suppress(FileNotFoundError):
            candidate.unlink()
    with contextlib.suppress(OSError):
        zip_path.parent.rmdir()


def _say_next_steps(output: Output, directory: Path) -> None:
    output.say(
        f"Follow it:      openscan-upload status {directory} --wait\nGet the model:  "
        f"openscan-upload download {directory} -o OUT"
    )
