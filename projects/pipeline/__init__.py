"""Photos in, textured 3D model out: a pure-Python pipeline around pycolmap and Open3D.

No Django in here (house style section 4). ``reconstruct`` runs in-process;
``projects.pipeline.runner.run_isolated`` runs it in a child process with a
time limit, a memory limit and cancellation.
"""

from projects.pipeline.orchestrate import STAGES, reconstruct
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
