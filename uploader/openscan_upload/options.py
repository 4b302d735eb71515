"""What the commands share: server, token, retry policy, API choice, validation."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from .client import NotFoundError, RestClient, WireClient
from .exits import EXIT_USAGE, ExitError
from .report import REPORT_NAME, Output, format_summary, write_report
from .retry import RetryPolicy
from .validate import Limits, TokenInfo, validate_directory


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


def folder_arg(path: Path) -> Path:
    if not path.is_dir():
        raise ExitError(EXIT_USAGE, f"{path} is not a folder.")
    return path.resolve()
