"""Photos in, textured 3D model out: a pure-Python pipeline around pycolmap and Open3D.

No Django in here (house style section 4). ``reconstruct`` runs in-process;
``projects.pipeline.runner.run_isolated`` runs it in a child process with a
time limit, a memory limit and cancellation.

Importing this package loads no engine: the web process and the runner's parent
only need the types, so ``reconstruct`` (pycolmap, Open3D) loads on first use.
"""

from typing import Any

from projects.pipeline.types import (
    PipelineError,
    Preset,
    Progress,
    ProgressCallback,
    ReconstructionOutputs,
    ReconstructionRequest,
    ReconstructionResult,
    StageTiming,
    UnusableImage,
)

__all__ = [
    "STAGES",
    "PipelineError",
    "Preset",
    "Progress",
    "ProgressCallback",
    "ReconstructionOutputs",
    "ReconstructionRequest",
    "ReconstructionResult",
    "StageTiming",
    "UnusableImage",
    "reconstruct",
]


def __getattr__(name: str) -> Any:
    if name in ("STAGES", "reconstruct"):
        from projects.pipeline import orchestrate

        return getattr(orchestrate, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
