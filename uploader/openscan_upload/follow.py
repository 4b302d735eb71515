"""After the upload: status, following processing to its end, and the download."""

from __future__ import annotations

import argparse
import re
import shutil
import time
import zipfile
from pathlib import Path
from typing import Any

from .client import (
    NetworkError,
    RestClient,
    WireClient,
    download,
    same_origin,
)
from .exits import (
    EXIT_NETWORK,
    EXIT_OK,
    EXIT_PROCESSING_FAILED,
    EXIT_REJECTED,
    EXIT_USAGE,
    ExitError,
)
from .options import make_policy, require_server, require_token
from .report import Output
from .retry import RetryPolicy
from .state import UploadState, load_state, new_state, save_state, scrub, state_path

DONE_STATUSES = frozenset(
    {"processing done", "done", "finished", "complete", "completed"}
)


FAILED_STATUSES = frozenset(
    {"processing failed", "failed", "expired", "error", "canceled", "cancelled"}
)


STATUS_POLL_FAILURES = 5


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
            + ". Check the photos (see the report) and try again with --restart, "
            "or process the photos already sent again: openscan-upload reprocess "
            f"{state.project.id or state.project.name} --preset fast",
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


def cmd_reprocess(args: argparse.Namespace, output: Output) -> int:
    """Queue a project again from the photos on the server (no upload), and follow."""
    server = require_server(args)
    token = require_token(args)
    policy = make_policy(args, output)
    state, path, directory = _project_ref(args, server)
    if RestClient.discover(server, policy) is None:
        raise ExitError(
            EXIT_REJECTED,
            f"{server} has no REST API, so it cannot process a project again; "
            "upload the photos again with: openscan-upload upload DIR --restart",
        )
    rest = RestClient(server, token, policy)
    if not state.project.id:
        found = rest.find_project(state.project.name)
        if found is None:
            raise ExitError(
                EXIT_REJECTED,
                f"This token has no project named {state.project.name!r}; give its "
                "id (see the project page) or the exact name.",
            )
        state.project.id = str(found["id"])
        state.project.name = str(found.get("name") or state.project.name)
    body = rest.reprocess(state.project.id, args.preset)
    state.api, state.phase = "rest", "started"
    if path is not None:
        save_state(path, state)
    output.event(
        "reprocess",
        project=state.project.name,
        id=state.project.id,
        status=body.get("status"),
        preset=body.get("preset"),
    )
    output.say(
        f"{state.project.name}: {body.get('status') or 'queued'} again with the "
        f"{body.get('preset') or 'same'} preset, from the photos already uploaded."
    )
    if args.download is not None:
        args.wait = True
    if args.wait:
        return follow(args, output, state, server, token, policy, directory, path)
    return EXIT_OK
