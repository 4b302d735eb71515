"""`openscan-upload`: validate, tag, upload (retries, resume), follow, download.

This module holds the parser and ``main``; the upload is ``session``, the rest
of a project's life ``follow``. Exit codes are stable and listed in
``EXIT_CODES``; `--help` shows them.
"""

from __future__ import annotations

import argparse
import os
import traceback
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .client import REST_CHUNK_SIZE, ApiError, AuthError, NetworkError, WireClient
from .exits import (
    EXIT_AUTH,
    EXIT_CODES,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_NETWORK,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_PROCESSING_FAILED,
    EXIT_REJECTED,
    EXIT_USAGE,
    EXIT_VALIDATION,
    ExitError,
)
from .follow import cmd_download, cmd_reprocess, cmd_status
from .options import (
    folder_arg,
    make_policy,
    require_server,
    run_validation,
    token_info_or_none,
)
from .packing import MAX_PART_SIZE
from .report import REPORT_NAME, Output
from .session import cmd_upload
from .tagging import MANIFEST_NAME
from .validate import Limits

__all__ = [
    "EXIT_AUTH",
    "EXIT_CODES",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_NETWORK",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "EXIT_PROCESSING_FAILED",
    "EXIT_REJECTED",
    "EXIT_USAGE",
    "EXIT_VALIDATION",
    "ExitError",
    "build_parser",
    "main",
]


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

    again = commands.add_parser(
        "reprocess",
        parents=[common, following],
        help="process a finished, failed or cancelled project again from the "
        "photos already on the server (no upload; charged like a new run)",
    )
    again.add_argument("project", metavar="PROJECT", help="DIR, project name or id")
    again.add_argument(
        "--preset",
        choices=("fast", "balanced", "quality"),
        help="processing preset (default: the project's current one)",
    )
    again.add_argument(
        "--download",
        type=Path,
        metavar="OUT",
        help="when done, download the result here (implies --wait)",
    )
    again.set_defaults(handler=cmd_reprocess)

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


def cmd_check(args: argparse.Namespace, output: Output) -> int:
    directory = folder_arg(args.directory)
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
