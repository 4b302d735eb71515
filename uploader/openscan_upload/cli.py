"""`openscan-upload`: validate, tag, upload (retries, resume), follow, download.

Exit codes are stable and listed in `EXIT_CODES`; `--help` shows them.
"""

from __future__ import annotations

import argparse
import calendar
import contextlib
import hashlib
import os
import re
import shutil
import sys
import tempfile
import time
import traceback
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from . import __version__
from .client import (
    REST_CHUNK_SIZE,
    ApiError,
    AuthError,
    LinkExpiredError,
    NetworkError,
    NotFoundError,
    RestClient,
    WireClient,
    download,
    same_origin,
)
from .packing import MAX_PART_SIZE, PackingError, build_zip, hash_ranges, split_parts
from .report import REPORT_NAME, Output, format_summary, write_report
from .retry import RetryPolicy
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
from .validate import (
    ImageInfo,
    Limits,
    TokenInfo,
    check_limits,
    validate_directory,
)

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_VALIDATION = 3
EXIT_AUTH = 4
EXIT_NETWORK = 5
EXIT_REJECTED = 6
EXIT_PROCESSING_FAILED = 7
EXIT_PARTIAL = 8
EXIT_INTERRUPTED = 130

EXIT_CODES = {
    EXIT_OK: "success: everything asked for happened",
    EXIT_INTERNAL: "internal error (a bug: please report it)",
    EXIT_USAGE: "usage error (bad option, missing server or token, not a folder)",
    EXIT_VALIDATION: "validation failed (see the summary and the report file)",
    EXIT_AUTH: "authentication failed (token refused)",
    EXIT_NETWORK: "network failure after retries (rerun to resume)",
    EXIT_REJECTED: "the server rejected a request (limits, credit, missing parts...)",
    EXIT_PROCESSING_FAILED: "processing failed on the server",
    EXIT_PARTIAL: "partial success (e.g. --skip-bad left photos out)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C); rerun the same command to resume",
}

# Upload links are valid for 4 hours; ask again a little before that.
LINK_MAX_AGE_SECONDS = 4 * 3600 - 15 * 60
DONE_STATUSES = frozenset(
    {"processing done", "done", "finished", "complete", "completed"}
)
FAILED_STATUSES = frozenset(
    {"processing failed", "failed", "expired", "error", "canceled", "cancelled"}
)
STATUS_POLL_FAILURES = 5


class ExitError(Exception):
    """Stop with an exit code and a message saying what to do next."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    output = Output(json_mode=args.json, quiet=args.quiet)
    try:
        code = args.handler(args, output)
    except ExitError as exc:
        output.warn(str(exc))
        code = exc.code
    except AuthError as exc:
        output.warn(f"{exc}\nCheck --token or OPENSCAN_TOKEN (nothing was retried).")
        code = EXIT_AUTH
    except NetworkError as exc:
        output.warn(
            f"{exc}\nThe network or the server failed. Everything confirmed so far "
            "is saved: run the same command again to resume."
        )
        code = EXIT_NETWORK
    except ApiError as exc:
        output.warn(f"The server refused: {exc}")
        code = EXIT_REJECTED
    except KeyboardInterrupt:
        output.warn(
            "\nInterrupted. What was confirmed is saved in the folder's "
            ".openscan-upload.json: run the same command again to resume."
        )
        code = EXIT_INTERRUPTED
    except Exception:
        output.warn(
            "Internal error (a bug in openscan-upload; please report it with the "
            "text below). The saved state is intact: a rerun resumes.\n"
            + traceback.format_exc()
        )
        code = EXIT_INTERNAL
    output.event("exit", code=code, meaning=EXIT_CODES.get(code, ""))
    return code


def build_parser() -> argparse.ArgumentParser:
    codes = "\n".join(f"  {code:>3}  {meaning}" for code, meaning in EXIT_CODES.items())
    parser = argparse.ArgumentParser(
        prog="openscan-upload",
        description="Validate a folder of photos, upload it to an OpenScan Portal "
        "(or any OpenScanCloud-compatible server), follow the processing and "
        "download the model.",
        epilog="Example:\n"
        "  export OPENSCAN_SERVER=https://portal.example OPENSCAN_TOKEN=...\n  "
        "openscan-upload upload ./scan --wait --download ./out\n\nExit "
        f"codes:\n{codes}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}"
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--server",
        default=os.environ.get("OPENSCAN_SERVER"),
        help="server URL (default: $OPENSCAN_SERVER)",
    )
    common.add_argument(
        "--token",
        default=os.environ.get("OPENSCAN_TOKEN"),
        help="API token (default: $OPENSCAN_TOKEN); never stored",
    )
    common.add_argument(
        "--retries",
        type=_positive_int,
        default=3,
        metavar="N",
        help="attempts per request for network errors, timeouts, 408, 429 "
        "and 5xx (default: 3); 400/401/403 are never retried",
    )
    common.add_argument(
        "--api",
        choices=("auto", "wire", "rest"),
        default="auto",
        help="protocol: the REST API's resumable uploads when the server "
        "offers them (auto), or force one",
    )
    common.add_argument(
        "--json",
        action="store_true",
        help="print newline-delimited JSON events instead of text and bars",
    )
    common.add_argument(
        "--quiet", action="store_true", help="only errors and next steps"
    )
    validation = argparse.ArgumentParser(add_help=False)
    validation.add_argument(
        "--strict", action="store_true", help="treat warnings as errors"
    )
    validation.add_argument(
        "--report",
        type=Path,
        metavar="PATH",
        help=f"validation report (default: DIR/{REPORT_NAME})",
    )
    validation.add_argument(
        "--max-file-size",
        type=_positive_int,
        default=Limits.max_file_size,
        metavar="BYTES",
        help="largest photo accepted (default: %(default)s)",
    )
    validation.add_argument(
        "--max-pixels",
        type=_positive_int,
        default=Limits.max_pixels,
        metavar="N",
        help="most pixels per photo (default: %(default)s)",
    )
    validation.add_argument(
        "--min-pixels",
        type=int,
        default=Limits.min_pixels,
        metavar="N",
        help="fewest pixels per photo (default: %(default)s)",
    )
    following = argparse.ArgumentParser(add_help=False)
    following.add_argument(
        "--wait", action="store_true", help="follow the processing until it ends"
    )
    following.add_argument(
        "--poll-interval",
        type=float,
        default=15.0,
        metavar="SECONDS",
        help="seconds between status requests with --wait (default: 15)",
    )
    following.add_argument(
        "--wait-timeout",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="give up waiting after this long (default: never)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = commands.add_parser(
        "check",
        parents=[common, validation],
        help="validate a folder only (nothing is sent)",
    )
    check.add_argument("directory", type=Path, metavar="DIR")
    check.set_defaults(handler=cmd_check)

    upload = commands.add_parser(
        "upload",
        parents=[common, validation, following],
        help="validate, tag, upload and start processing (resumes if interrupted)",
    )
    upload.add_argument("directory", type=Path, metavar="DIR")
    upload.add_argument(
        "--project", help="project name (default: folder name and time)"
    )
    upload.add_argument(
        "--skip-bad",
        action="store_true",
        help="upload the photos that passed and leave the others out",
    )
    upload.add_argument(
        "--restart",
        action="store_true",
        help="forget the saved state and start a new project (charged again)",
    )
    upload.add_argument(
        "--part-size",
        type=_positive_int,
        default=MAX_PART_SIZE,
        metavar="BYTES",
        help="largest upload part (default and maximum: %(default)s)",
    )
    upload.add_argument(
        "--manifest",
        type=Path,
        metavar="PATH",
        help=f"rig sidecar with turntable/tilt angles (default: "
        f"DIR/{MANIFEST_NAME} if present)",
    )
    upload.add_argument(
        "--chunk-size",
        type=_positive_int,
        default=REST_CHUNK_SIZE,
        metavar="BYTES",
        help="bytes per resumable request with the REST API "
        "(default: %(default)s); a dropped connection costs at most this much",
    )
    upload.add_argument("--preset", help="processing preset (REST API only)")
    upload.add_argument(
        "--work-dir",
        type=Path,
        metavar="PATH",
        help="where the zip is built (default: a folder in the temp dir)",
    )
    upload.add_argument(
        "--download",
        type=Path,
        metavar="OUT",
        help="after processing, download the result here (implies --wait)",
    )
    upload.set_defaults(handler=cmd_upload)

    status = commands.add_parser(
        "status",
        parents=[common, following],
        help="show a project's status (DIR, project name or id)",
    )
    status.add_argument("project", metavar="PROJECT")
    status.add_argument(
        "--download",
        type=Path,
        metavar="OUT",
        help="when done, download the result here (implies --wait)",
    )
    status.set_defaults(handler=cmd_status)

    fetch = commands.add_parser(
        "download", parents=[common], help="download a finished project's result"
    )
    fetch.add_argument("project", metavar="PROJECT")
    fetch.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("."),
        metavar="OUT",
        help="file or folder to write to (default: current folder)",
    )
    fetch.set_defaults(handler=cmd_download)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


# ---------------------------------------------------------------- helpers


def require_server(args: argparse.Namespace) -> str:
    if not args.server:
        raise ExitError(
            EXIT_USAGE, "No server given: use --server URL or set OPENSCAN_SERVER."
        )
    if not re.match(r"^https?://", args.server):
        raise ExitError(
            EXIT_USAGE,
            f"--server must start with http:// or https:// ({args.server!r})",
        )
    return str(args.server).rstrip("/")


def require_token(args: argparse.Namespace) -> str:
    if not args.token:
        raise ExitError(
            EXIT_USAGE, "No token given: use --token or set OPENSCAN_TOKEN."
        )
    return str(args.token)


def make_policy(args: argparse.Namespace, output: Output) -> RetryPolicy:
    def on_retry(attempt: int, delay: float, reason: str) -> None:
        output.event(
            "retry",
            attempt=attempt,
            of=args.retries,
            delay=round(delay, 2),
            reason=reason,
        )
        if not output.json_mode and not output.quiet:
            tqdm.write(
                f"  {reason}; retrying in {delay:.1f} s (attempt {attempt + 1} of "
                f"{args.retries})",
                file=sys.stderr,
            )

    return RetryPolicy(attempts=args.retries, on_retry=on_retry)


def choose_api(
    args: argparse.Namespace, server: str, policy: RetryPolicy, remembered: str | None
) -> tuple[str, dict[str, Any] | None]:
    """Which protocol to speak: the one the upload began with, else asked/offered."""
    if remembered:
        return remembered, None
    if args.api == "wire":
        return "wire", None
    info = RestClient.discover(server, policy)
    if info is None:
        if args.api == "rest":
            raise ExitError(
                EXIT_USAGE, f"{server} does not offer the REST API (api/v1/)."
            )
        return "wire", None
    return "rest", info


def limits_from(args: argparse.Namespace) -> Limits:
    return Limits(
        max_file_size=args.max_file_size,
        max_pixels=args.max_pixels,
        min_pixels=args.min_pixels,
    )


def token_info_or_none(wire: WireClient) -> TokenInfo | None:
    """getTokenInfo; None when the server has no wire API (REST-only)."""
    try:
        return wire.token_info()
    except NotFoundError:
        return None


def run_validation(
    args: argparse.Namespace,
    output: Output,
    directory: Path,
    token: TokenInfo | None,
) -> tuple[Any, Path]:
    limits = limits_from(args)
    count = sum(1 for entry in directory.iterdir() if entry.is_file())
    output.event("validation_start", directory=str(directory), files=count)
    with output.bar("Checking photos", count, unit="file") as bar:
        result = validate_directory(
            directory,
            limits,
            token,
            strict=args.strict,
            on_file=lambda _path: bar.update(1),
        )
    report_path = args.report or directory / REPORT_NAME
    write_report(
        report_path,
        directory,
        result,
        args.strict,
        selected=[image.name for image in result.usable(args.strict)],
    )
    output.say(format_summary(result, args.strict))
    output.say(f"Report: {report_path}")
    for issue in result.issues:
        output.event("issue", **issue.as_dict())
    output.event(
        "validation",
        photos=len(result.images),
        usable=len(result.usable(args.strict)),
        errors=len(result.blocking(args.strict)),
        report=str(report_path),
    )
    return result, report_path


# ---------------------------------------------------------------- check


def cmd_check(args: argparse.Namespace, output: Output) -> int:
    directory = _directory(args.directory)
    token = None
    if args.server and args.token:
        policy = make_policy(args, output)
        token = token_info_or_none(WireClient(require_server(args), args.token, policy))
    result, report_path = run_validation(args, output, directory, token)
    blocking = result.blocking(args.strict)
    if blocking:
        raise ExitError(
            EXIT_VALIDATION,
            f"Validation failed: {len(blocking)} problem(s). Fix them, or upload "
            f"with --skip-bad to leave the bad photos out. Details: {report_path}",
        )
    output.say(
        f"All {len(result.images)} photos can be uploaded: openscan-upload upload "
        f"{directory}"
    )
    return EXIT_OK


def _directory(path: Path) -> Path:
    if not path.is_dir():
        raise ExitError(EXIT_USAGE, f"{path} is not a folder.")
    return path.resolve()


# ---------------------------------------------------------------- upload


def cmd_upload(args: argparse.Namespace, output: Output) -> int:
    directory = _directory(args.directory)
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
                f"--restart: project {previous.project.name} is left "
                "unfinished on the server; a new project is created."
            )
    if state is not None and state.server != public_server_url(server):
        raise ExitError(
            EXIT_USAGE,
            f"This folder's upload went to {state.server}; use --restart to "
            f"upload it to {public_server_url(server)} instead.",
        )
    if (
        state is not None
        and args.project
        and state.project.name not in (None, args.project)
    ):
        raise ExitError(
            EXIT_USAGE,
            f"This folder is being uploaded as {state.project.name}; use "
            "--restart to upload it under another name.",
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
    pack(output, state, path, selected, name, zip_path, part_size, angles)
    zip_issues = check_limits(
        selected, token_info, zip_size=state.zip["size"], check_credit=not created
    )
    if zip_issues:
        raise ExitError(
            EXIT_VALIDATION, "\n".join(f"{i.kind}: {i.message}" for i in zip_issues)
        )

    if state.phase in ("packed", "creating"):
        create(output, state, path, wire, rest, args.preset)
    if state.phase == "created":
        upload_parts(output, state, path, wire, rest, zip_path, server)
    if state.phase == "uploaded":
        start(output, state, path, wire, rest)
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


def pack(
    output: Output,
    state: UploadState,
    path: Path,
    images: list[ImageInfo],
    name: str,
    zip_path: Path,
    part_size: int,
    angles: dict[str, Angles],
) -> None:
    """Build (or reuse) the zip and plan its parts.

    A resumed upload must get the same bytes as the first run.
    """
    known = state.zip
    if known and zip_path.exists() and zip_path.stat().st_size == known["size"]:
        size, digest, _ = hash_ranges(zip_path, [])
        if digest == known["sha256"]:
            output.say(f"Reusing {zip_path} ({size:,} bytes).")
            return
    total = sum(image.size for image in images)
    try:
        with output.bar("Zipping", total) as bar:
            packed = build_zip(images, name, zip_path, angles, progress=bar.update)
    except PackingError as exc:
        raise ExitError(EXIT_VALIDATION, str(exc)) from exc
    except OSError as exc:
        raise ExitError(
            EXIT_USAGE,
            f"Cannot write the zip to {zip_path.parent}: {exc}. Choose another place "
            "with --work-dir.",
        ) from exc
    if known:
        if packed.sha256 != known["sha256"]:
            raise ExitError(
                EXIT_VALIDATION,
                "Rebuilding the zip gave different bytes than the upload that is in "
                "progress (another tool version?). Run with --restart to start a new "
                "project.",
            )
        return
    parts = split_parts(zip_path, part_size)
    state.zip = {
        "name": name,
        "size": packed.size,
        "sha256": packed.sha256,
        "part_size": part_size,
        "entries": len(packed.entries),
    }
    state.parts = [
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
    state.phase = "packed"
    save_state(path, state)
    output.event("packed", zip_size=packed.size, parts=len(parts), sha256=packed.sha256)
    output.say(
        f"Packed {len(images)} photo(s) into {packed.size:,} bytes, {len(parts)} "
        "part(s)."
    )


def create(
    output: Output,
    state: UploadState,
    path: Path,
    wire: WireClient,
    rest: RestClient | None,
    preset: str | None,
) -> None:
    """Create the project once. The state says 'creating' before the request, so a
    crash between the server's answer and the next save is retried with the same
    name, which the server answers without charging again."""
    name = state.project.name
    parts = state.parts
    state.phase = "creating"
    save_state(path, state)
    if rest is None:
        answer = wire.create_project(
            name, len(state.files), len(parts), state.zip["size"]
        )
        issued = now_iso()
        for part, link in zip(parts, answer["ulink"]):
            part["link"], part["link_issued_at"] = link, issued
        state.project.credit_charged = answer.get("credit")
        state.server_answers["createProject"] = {
            key: value for key, value in answer.items() if key != "ulink"
        }
    else:
        answer = rest.create_project(
            name, len(state.files), state.zip["size"], len(parts), preset
        )
        state.project.id = str(answer["id"])
        for part, remote in zip(parts, answer["parts"]):
            part["link"] = rest.url(
                str(
                    remote.get("upload_url")
                    or rest.part_url(answer["id"], part["index"])
                )
            )
            part["received"] = int(remote.get("received") or 0)
        state.server_answers["create"] = scrub(answer)
    state.project.created_at = now_iso()
    state.phase = "created"
    save_state(path, state)
    output.event(
        "created",
        project=name,
        id=state.project.id,
        credit=state.project.credit_charged,
    )
    output.say(
        f"Created project {name}"
        + (f" (id {state.project.id})" if state.project.id else "")
        + "."
    )


def _link_is_fresh(part: dict[str, Any]) -> bool:
    issued = part.get("link_issued_at")
    if not part.get("link") or not issued:
        return False
    try:
        issued_ts = calendar.timegm(time.strptime(issued, "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        return False
    return time.time() - issued_ts < LINK_MAX_AGE_SECONDS


def refresh_links(
    output: Output, state: UploadState, path: Path, wire: WireClient
) -> None:
    """New upload links for an existing project, without creating or charging anew."""
    name = state.project.name
    parts = state.parts
    try:
        info = wire.project_info(name)
    except NotFoundError as exc:
        raise ExitError(
            EXIT_REJECTED,
            f"The server no longer knows project {name} (it may have expired). Run "
            "again with --restart to upload it as a new project.",
        ) from exc
    links = info.get("ulink")
    if (
        info.get("status") != "created"
        or not isinstance(links, list)
        or len(links) != len(parts)
    ):
        # createProject on a project still in 'created' hands out fresh links and
        # does not charge again.
        links = wire.create_project(
            name, len(state.files), len(parts), state.zip["size"]
        )["ulink"]
    issued = now_iso()
    for part, link in zip(parts, links):
        part["link"], part["link_issued_at"] = link, issued
    save_state(path, state)
    output.event("links_refreshed", project=name)


def upload_parts(
    output: Output,
    state: UploadState,
    path: Path,
    wire: WireClient,
    rest: RestClient | None,
    zip_path: Path,
    server: str,
) -> None:
    parts = state.parts
    total = state.zip["size"]
    already = bytes_done(state)
    pending = [part for part in parts if part["state"] != "done"]
    if already:
        output.say(
            f"Resuming: {len(parts) - len(pending)} of {len(parts)} part(s), "
            f"{already:,} of {total:,} bytes already on the server."
        )
    with output.bar("Uploading", total, initial=already) as bar:
        for part in pending:
            output.event("part_start", index=part["index"], size=part["size"])
            if rest is None:
                _upload_wire_part(output, state, path, wire, zip_path, part, bar.update)
            else:
                server_offset = rest.part_offset(part["link"])
                bar.update(server_offset - int(part.get("received") or 0))
                rest.upload_part(
                    part["link"],
                    zip_path,
                    part["offset"],
                    part["size"],
                    bar.update,
                    received=server_offset,
                )
            part["state"], part["received"] = "done", part["size"]
            part["confirmed_at"] = now_iso()
            save_state(path, state)
            output.event("part_done", index=part["index"], size=part["size"])
    state.phase = "uploaded"
    save_state(path, state)


def _upload_wire_part(
    output: Output,
    state: UploadState,
    path: Path,
    wire: WireClient,
    zip_path: Path,
    part: dict[str, Any],
    progress: Callable[[int], None],
) -> None:
    if not _link_is_fresh(part):
        refresh_links(output, state, path, wire)
    try:
        wire.upload_part(part["link"], zip_path, part["offset"], part["size"], progress)
    except LinkExpiredError:
        output.say(
            f"  The upload link of part {part['index'] + 1} expired; asking for a "
            "new one."
        )
        refresh_links(output, state, path, wire)
        wire.upload_part(part["link"], zip_path, part["offset"], part["size"], progress)


def start(
    output: Output,
    state: UploadState,
    path: Path,
    wire: WireClient,
    rest: RestClient | None,
) -> None:
    name = state.project.name
    if rest is None:
        answer = wire.start_project(name)
        state.server_answers["startProject"] = answer
    else:
        answer = rest.start(state.project.id)
        state.server_answers["start"] = scrub(answer)
    state.phase = "started"
    state.project.started_at = now_iso()
    save_state(path, state)
    output.event("started", project=name, id=state.project.id)
    output.say(f"Uploaded and started project {name}.")


def _say_next_steps(output: Output, directory: Path) -> None:
    output.say(
        f"Follow it:      openscan-upload status {directory} --wait\nGet the model:  "
        f"openscan-upload download {directory} -o OUT"
    )


# ------------------------------------------------------- status, wait, download


def _project_ref(
    args: argparse.Namespace,
    server: str,
) -> tuple[UploadState, Path | None, Path | None]:
    """(state, state file, folder): from a folder's state file, or a bare name/id."""
    candidate = Path(args.project)
    if candidate.is_dir():
        path = state_path(candidate.resolve())
        state = load_state(path)
        if state is None or not state.project.name:
            raise ExitError(
                EXIT_USAGE,
                f"{candidate} has no upload in progress (no {path.name}); run "
                f"openscan-upload upload {candidate} first.",
            )
        return state, path, candidate.resolve()
    state = new_state(server)
    if re.fullmatch(r"[0-9a-fA-F-]{32,36}", args.project):
        state.api, state.project.id = "rest", args.project
        state.project.name = args.project
    else:
        state.api = "wire"
        state.project.name = args.project
    state.phase = "started"
    return state, None, None


def fetch_status(
    state: UploadState,
    wire: WireClient,
    rest: RestClient | None,
) -> dict[str, Any]:
    """The project's status in one shape for both APIs."""
    if state.api == "rest" and rest is not None and state.project.id:
        body = rest.project(state.project.id)
        # ``downloads`` is a list of {"name", "size", "url"}; the zip is the result.
        downloads = body.get("downloads")
        link = body.get("result_url") or next(
            (
                item["url"]
                for item in downloads or ()
                if isinstance(item, dict) and item.get("name") == "result.zip"
            ),
            "",
        )
        return {
            "status": str(body.get("status") or ""),
            "progress": body.get("progress"),
            "error": body.get("error") or "",
            "download": link or "",
            "raw": scrub(body),
        }
    body = wire.project_info(state.project.name)
    return {
        "status": str(body.get("status") or ""),
        "progress": None,
        "error": "",
        "download": str(body.get("dlink") or ""),
        "raw": {key: value for key, value in body.items() if key != "ulink"},
    }


def cmd_status(args: argparse.Namespace, output: Output) -> int:
    server = require_server(args)
    token = require_token(args)
    policy = make_policy(args, output)
    state, path, directory = _project_ref(args, server)
    if args.download is not None:
        args.wait = True
    if args.wait:
        return follow(args, output, state, server, token, policy, directory, path)
    wire = WireClient(server, token, policy)
    rest = RestClient(server, token, policy) if state.api == "rest" else None
    info = fetch_status(state, wire, rest)
    output.event(
        "status",
        project=state.project.name,
        status=info["status"],
        progress=info["progress"],
        error=info["error"],
        download=info["download"],
    )
    output.say(
        f"{state.project.name}: {info['status'] or 'unknown'}"
        + (f" ({info['error']})" if info["error"] else "")
    )
    if info["download"]:
        output.say(f"Result: {info['download']}")
    if info["status"] in FAILED_STATUSES:
        return EXIT_PROCESSING_FAILED
    return EXIT_OK


def follow(
    args: argparse.Namespace,
    output: Output,
    state: UploadState,
    server: str,
    token: str,
    policy: RetryPolicy,
    directory: Path | None,
    path: Path | None,
) -> int:
    """Poll until processing ends; then download if asked."""
    wire = WireClient(server, token, policy)
    rest = RestClient(server, token, policy) if state.api == "rest" else None
    deadline = time.monotonic() + args.wait_timeout if args.wait_timeout > 0 else None
    failures = 0
    last_status = None
    with output.bar("Processing", 100, unit="%") as bar:
        while True:
            try:
                info = fetch_status(state, wire, rest)
                failures = 0
            except NetworkError:
                failures += 1
                if failures >= STATUS_POLL_FAILURES:
                    raise
                info = None
            if info is not None:
                status = info["status"]
                if status != last_status:
                    last_status = status
                    bar.set_description(f"Processing: {status}")
                    output.event(
                        "status",
                        project=state.project.name,
                        status=status,
                        progress=info["progress"],
                    )
                percent = _percent(info["progress"], status)
                if percent is not None and percent > bar.count:
                    bar.update(percent - bar.count)
                if status in DONE_STATUSES or status in FAILED_STATUSES:
                    break
            if deadline is not None and time.monotonic() >= deadline:
                raise ExitError(
                    EXIT_NETWORK,
                    f"Still '{last_status}' after {args.wait_timeout:.0f} s. Check "
                    "again later with: openscan-upload status "
                    f"{directory or state.project.name} --wait",
                )
            time.sleep(args.poll_interval)
    if path is not None:
        state.server_answers["status"] = info["raw"]
        state.phase = "done" if info["status"] in DONE_STATUSES else "failed"
        save_state(path, state)
    if info["status"] in FAILED_STATUSES:
        raise ExitError(
            EXIT_PROCESSING_FAILED,
            f"Processing failed: {info['status']}"
            + (f" ({info['error']})" if info["error"] else "")
            + ". Check the photos (see the report) and try again with --restart.",
        )
    output.say(f"Processing done: {state.project.name}.")
    if getattr(args, "download", None) is not None:
        fetch_result(args, output, state, info, args.download, server, token, policy)
    elif info["download"]:
        output.say(f"Result: {info['download']}")
    return EXIT_OK


def _percent(progress: Any, status: str) -> int | None:
    """Whole percent from the portal's progress: ``overall`` is a 0-1 fraction."""
    if status in DONE_STATUSES:
        return 100
    if isinstance(progress, dict):
        progress = progress.get("overall")
    if not isinstance(progress, (int, float)):
        return None
    return max(0, min(100, int(100 * float(progress))))


def fetch_result(
    args: argparse.Namespace,
    output: Output,
    state: UploadState,
    info: dict[str, Any],
    out: Path,
    server: str,
    token: str,
    policy: RetryPolicy,
) -> Path:
    link = info["download"]
    if not link:
        raise ExitError(
            EXIT_REJECTED,
            "The server reports the project as done but offers no download link "
            "yet; try again later with: openscan-upload download "
            f"{state.project.name} -o {out}",
        )
    url = (
        link
        if re.match(r"^https?://", link)
        else server.rstrip("/") + "/" + link.lstrip("/")
    )
    stem = re.sub(r"\.zip$", "", state.project.name or "result")
    # OUT is a folder unless it names a .zip: the zip goes in and is unpacked beside it.
    into_folder = out.suffix.lower() != ".zip"
    if into_folder:
        out.mkdir(parents=True, exist_ok=True)
    destination = out / f"{stem}-result.zip" if into_folder else out
    headers = (
        {"Authorization": f"Bearer {token}"}
        if (state.api == "rest" and same_origin(url, server))
        else None
    )
    with output.bar("Downloading", None) as bar:

        def progress(count: int, total: int | None) -> None:
            if total is not None and bar.total != total:
                bar.reset(total, bar.count)
            bar.update(count)

        saved = download(url, destination, policy, headers=headers, progress=progress)
    output.event("downloaded", path=str(saved), size=saved.stat().st_size)
    output.say(f"Downloaded {saved}")
    if into_folder:
        unpacked = _unpack(saved, out / stem)
        output.say(f"Unpacked the model into {unpacked}")
    return saved


def _unpack(archive: Path, dest: Path) -> Path:
    """Extract the result zip with flat, safe names (never outside ``dest``)."""
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            name = Path(info.filename).name
            if info.is_dir() or not name or name.startswith("."):
                continue
            with zf.open(info) as src, (dest / name).open("wb") as dst:
                shutil.copyfileobj(src, dst)
    return dest


def cmd_download(args: argparse.Namespace, output: Output) -> int:
    server = require_server(args)
    token = require_token(args)
    policy = make_policy(args, output)
    state, _path, _folder = _project_ref(args, server)
    wire = WireClient(server, token, policy)
    rest = RestClient(server, token, policy) if state.api == "rest" else None
    info = fetch_status(state, wire, rest)
    if info["status"] in FAILED_STATUSES:
        raise ExitError(
            EXIT_PROCESSING_FAILED,
            f"Processing failed: {info['status']}"
            + (f" ({info['error']})" if info["error"] else ""),
        )
    if info["status"] not in DONE_STATUSES:
        raise ExitError(
            EXIT_REJECTED,
            f"Not ready yet (status: {info['status'] or 'unknown'}). Wait for it "
            f"with: openscan-upload status {args.project} --wait --download "
            f"{args.output}",
        )
    fetch_result(args, output, state, info, args.output, server, token, policy)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
