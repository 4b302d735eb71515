"""Fixtures for the pipeline tests: a tiny synthetic turntable set and one real run."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # benchmarks/ and projects/ live at the repo root
    sys.path.insert(0, str(ROOT))

from benchmarks.synthetic import generate, spec_for  # noqa: E402
from projects.pipeline import (  # noqa: E402
    Preset,
    ReconstructionRequest,
    ReconstructionResult,
    reconstruct,
)


@pytest.fixture(scope="session")
def turntable_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """32 views (2 rings) at 480x360 with ground truth; ~6 s to render."""
    out = tmp_path_factory.mktemp("turntable")
    return generate(out, spec_for(32, 480, 360, supersample=1))


@pytest.fixture(scope="session")
def fast_result(
    turntable_set: Path, tmp_path_factory: pytest.TempPathFactory
) -> ReconstructionResult:
    """The real engine on the tiny set, fast preset, run once per session."""
    base = tmp_path_factory.mktemp("fast_run")
    request = ReconstructionRequest.from_input_path(
        turntable_set / "images",
        out_dir=base / "out",
        workdir=base / "work",
        preset=Preset.FAST,
    )
    return reconstruct(request)
