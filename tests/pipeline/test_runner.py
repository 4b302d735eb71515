"""run_isolated: the pipeline in a child process that can always be stopped."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from projects.pipeline import PipelineError, Preset, Progress, ReconstructionRequest
from projects.pipeline.runner import run_isolated


def _request(turntable_set: Path, tmp_path: Path) -> ReconstructionRequest:
    return ReconstructionRequest.from_input_path(
        turntable_set / "images",
        out_dir=tmp_path / "out",
        workdir=tmp_path / "work",
        preset=Preset.BALANCED,
    )


def test_time_limit_stops_the_child(turntable_set: Path, tmp_path: Path) -> None:
    """A run longer than its limit is killed and reported as time_limit."""
    start = time.monotonic()
    with pytest.raises(PipelineError) as caught:
        run_isolated(_request(turntable_set, tmp_path), time_limit_s=4.0)
    assert caught.value.code == "time_limit"
    assert (
        caught.value.message
        == "The reconstruction hit its time limit of 4 s and was stopped."
    )
    assert time.monotonic() - start < 20
    assert not (tmp_path / "out" / "model.glb").exists()


def test_cancel_stops_the_child_after_progress(
    turntable_set: Path, tmp_path: Path
) -> None:
    """Progress crosses the process boundary; cancelling then stops the run."""
    cancel = threading.Event()
    seen: list[Progress] = []

    def on_progress(progress: Progress) -> None:
        seen.append(progress)
        if progress.stage == "features":
            cancel.set()

    with pytest.raises(PipelineError) as caught:
        run_isolated(
            _request(turntable_set, tmp_path),
            time_limit_s=120,
            on_progress=on_progress,
            cancel_event=cancel,
        )
    assert caught.value.code == "cancelled"
    assert seen[0].stage == "ingest"
    assert seen[0].stage_count == 8


def test_memory_limit_reports_out_of_memory(
    turntable_set: Path, tmp_path: Path
) -> None:
    """A child above its memory limit is stopped as out_of_memory."""
    with pytest.raises(PipelineError) as caught:
        run_isolated(
            _request(turntable_set, tmp_path),
            time_limit_s=120,
            memory_limit_bytes=150 * 2**20,
        )
    assert caught.value.code == "out_of_memory"
    assert "more memory" in caught.value.message


def test_pipeline_errors_from_the_child_keep_their_code(tmp_path: Path) -> None:
    """A failure inside the child arrives as the same PipelineError."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jpg").write_text("not a photo")
    request = ReconstructionRequest.from_input_path(
        tmp_path / "in", out_dir=tmp_path / "o", workdir=tmp_path / "w"
    )
    with pytest.raises(PipelineError) as caught:
        run_isolated(request, time_limit_s=60)
    assert caught.value.code == "unreadable_images"
