"""Run ``reconstruct`` in a child process with a time limit, a memory limit and
cancellation.

pycolmap and Open3D are native code: a Python-level timeout cannot interrupt
them, and a worker killed mid-task by its queue is retried forever. A child
process can always be killed, and its exit tells what happened.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import signal
import threading
import time
from dataclasses import replace
from multiprocessing.connection import Connection
from typing import Any

from projects.pipeline.types import (
    PipelineError,
    Progress,
    ProgressCallback,
    ReconstructionRequest,
    ReconstructionResult,
    ignore_progress,
)

POLL_SECONDS = 0.2
# A native call that holds the GIL (Open3D's Poisson) silences the child's own
# ticker; past this many seconds the parent repeats its last report, the time
# left counted down by the time since.
QUIET_SECONDS = 2.0
_AS_HEADROOM = 2 * 1024**3  # address space beyond RSS: thread stacks, allocator arenas


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this child when its parent dies (a worker killed with -9).

    Without it the engine would run on as an orphan, holding cores and memory.
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    except OSError:  # Not Linux: the parent's own kill on exit still applies.
        return
    if os.getppid() == 1:  # The parent died before prctl took effect.
        os._exit(1)


def _child(
    request: ReconstructionRequest, conn: Connection, memory_limit: int | None
) -> None:
    _die_with_parent()
    if memory_limit:
        # Backstop for spikes faster than the parent's RSS polling.
        limit = memory_limit * 2 + _AS_HEADROOM
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from projects.pipeline.orchestrate import (
        reconstruct,  # heavy imports in the child only
    )

    try:
        result = reconstruct(request, on_progress=lambda p: conn.send(("progress", p)))
        conn.send(("result", result))
    except PipelineError as exc:
        conn.send(("error", exc))
    except MemoryError:
        conn.send(("error", PipelineError("out_of_memory", _OOM_MESSAGE)))
    except Exception as exc:  # any engine failure must reach the parent as a reason
        conn.send(
            (
                "error",
                PipelineError(
                    "engine_error", f"The reconstruction engine failed: {exc}"
                ),
            )
        )
    finally:
        conn.close()


_OOM_MESSAGE = (
    "The reconstruction needed more memory than this server allows; try fewer or "
    "smaller photos."
)


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _stop(process: multiprocessing.process.BaseProcess) -> None:
    if process.is_alive():
        process.kill()
    process.join(timeout=10)


def run_isolated(
    request: ReconstructionRequest,
    *,
    time_limit_s: float,
    on_progress: ProgressCallback = ignore_progress,
    memory_limit_bytes: int | None = None,
    cancel_event: threading.Event | None = None,
) -> ReconstructionResult:
    """``reconstruct(request)`` in a spawned child; progress arrives through a pipe.

    Raises:
        PipelineError: with code time_limit, out_of_memory, cancelled or
            engine_crash from here, or whatever the pipeline itself raised.
    """
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(
        target=_child, args=(request, sender, memory_limit_bytes), daemon=True
    )
    process.start()
    sender.close()  # the child holds the only writer, so EOF means it is gone
    deadline = time.monotonic() + time_limit_s
    peak = 0
    outcome: tuple[str, Any] | None = None
    last: Progress | None = None
    last_at = repeated_at = time.monotonic()
    try:
        while outcome is None:
            if cancel_event is not None and cancel_event.is_set():
                _stop(process)
                raise PipelineError("cancelled", "The reconstruction was cancelled.")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                _stop(process)
                raise PipelineError(
                    "time_limit",
                    f"The reconstruction hit its time limit of {time_limit_s:.0f} s "
                    "and was stopped.",
                )
            if memory_limit_bytes:
                peak = max(peak, _rss_bytes(process.pid or 0))
                if peak > memory_limit_bytes:
                    _stop(process)
                    raise PipelineError("out_of_memory", _OOM_MESSAGE)
            if receiver.poll(min(POLL_SECONDS, remaining)):
                try:
                    kind, payload = receiver.recv()
                except EOFError:
                    break
                if kind == "progress":
                    on_progress(payload)
                    last, last_at = payload, time.monotonic()
                    repeated_at = last_at
                else:
                    outcome = (kind, payload)
            elif not process.is_alive() and not receiver.poll():
                break
            elif last is not None and time.monotonic() - repeated_at > QUIET_SECONDS:
                repeated_at = time.monotonic()
                on_progress(_counted_down(last, repeated_at - last_at))
    finally:
        if outcome is not None or not process.is_alive():
            process.join(timeout=10)
        _stop(process)
        receiver.close()
    if outcome is not None:
        kind, payload = outcome
        if kind == "result":
            return payload  # type: ignore[no-any-return]  # the child sends a ReconstructionResult
        raise payload
    raise _crash_error(
        process.exitcode,
        near_memory_limit=bool(memory_limit_bytes and peak > 0.5 * memory_limit_bytes),
    )


def _counted_down(last: Progress, seconds: float) -> Progress:
    """The last report again, ``seconds`` later: the same place, less time left
    (never below a tenth of it: the stage is late, not done)."""
    eta = last.eta_seconds
    if eta is not None:
        eta = round(max(eta - seconds, 0.1 * eta), 1)
    return replace(last, message="", counters={}, eta_seconds=eta)


def _crash_error(exitcode: int | None, *, near_memory_limit: bool) -> PipelineError:
    """Explain a child that died without a word."""
    if exitcode == -signal.SIGKILL:
        # Nobody here sent it: the kernel's OOM killer is the usual sender.
        return PipelineError("out_of_memory", _OOM_MESSAGE)
    if exitcode is not None and exitcode < 0 and near_memory_limit:
        return PipelineError("out_of_memory", _OOM_MESSAGE)
    how = (
        f"signal {signal.Signals(-exitcode).name}"
        if exitcode and exitcode < 0
        else f"exit code {exitcode}"
    )
    return PipelineError(
        "engine_crash",
        f"The reconstruction engine crashed ({how}); the photos may be unusual.",
    )


__all__ = ["run_isolated"]
