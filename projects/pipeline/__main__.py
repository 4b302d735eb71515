"""``python -m projects.pipeline IMAGES_DIR_OR_ZIP OUT_DIR [--preset balanced]``."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from projects.pipeline import (
    PipelineError,
    Preset,
    Progress,
    ReconstructionRequest,
    reconstruct,
)
from projects.pipeline.runner import run_isolated


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m projects.pipeline", description="Photos to a textured 3D model."
    )
    parser.add_argument("input", type=Path, help="folder of photos or a zip of them")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument(
        "--preset", choices=[p.value for p in Preset], default=Preset.BALANCED.value
    )
    parser.add_argument(
        "--workdir", type=Path, help="scratch folder (default: a temporary one)"
    )
    parser.add_argument(
        "--time-limit",
        type=float,
        help="seconds; runs in a child process that is killed after it",
    )
    parser.add_argument("--min-registered-share", type=float, default=0.5)
    args = parser.parse_args(argv)
    start = time.perf_counter()

    def show(p: Progress) -> None:
        counters = " ".join(f"{k}={v}" for k, v in p.counters.items())
        line = (
            f"[{time.perf_counter() - start:6.1f}s] "
            f"{p.stage_index + 1}/{p.stage_count} {p.stage:<9}"
        )
        print(f"{line} {p.fraction:4.0%} {counters} {p.message}".rstrip(), flush=True)

    with tempfile.TemporaryDirectory(prefix="openscan-") as tmp:
        workdir = args.workdir or Path(tmp)
        try:
            request = ReconstructionRequest.from_input_path(
                args.input,
                out_dir=args.out_dir,
                workdir=workdir,
                preset=Preset(args.preset),
                min_registered_share=args.min_registered_share,
            )
            if args.time_limit:
                result = run_isolated(
                    request, time_limit_s=args.time_limit, on_progress=show
                )
            else:
                result = reconstruct(request, on_progress=show)
        except PipelineError as exc:
            print(f"FAILED ({exc.code}): {exc.message}", file=sys.stderr)
            return 1
    print(
        f"\nDone in {result.seconds:.1f} s: "
        f"{result.images_registered}/{result.images_used} photos placed "
        f"({result.images_total} given), {result.dense_points} points, "
        f"{result.faces} faces."
    )
    for timing in result.timings:
        print(
            f"  {timing.stage:<9} {timing.seconds:7.1f} s   peak "
            f"{timing.peak_rss_bytes / 2**20:7.0f} MiB"
        )
    for bad in result.unusable_images:
        print(f"  unusable: {bad.name}: {bad.reason}")
    for warning in result.warnings:
        print(f"  warning: {warning}")
    print(f"Outputs in {args.out_dir} (result.zip holds them all).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
