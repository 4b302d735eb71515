"""How honest the time left is: the real pipeline on generated sets, every
progress report recorded as the worker receives it.

For each set it prints the time-left error at 25, 50 and 75 % of the real
elapsed time (|predicted remaining - actual remaining| / actual remaining, from
the last report before that moment), the longest gap between reports, and per
stage the measured seconds over the cost model's prediction (the factor to
apply to ``projects.pipeline.eta.RATES`` when calibrating on a new machine).

Usage: ``python -m benchmarks.eta [--views 24,60] [--size 640x480]
[--preset balanced]``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from benchmarks.synthetic import generate, spec_for
from projects.pipeline import Preset, Progress, ReconstructionRequest
from projects.pipeline.orchestrate import predict_stages
from projects.pipeline.presets import preset_config
from projects.pipeline.runner import run_isolated

ROOT = Path(__file__).resolve().parents[1]
QUARTERS = (0.25, 0.5, 0.75)


@dataclass(frozen=True, slots=True)
class Sample:
    seconds: float  # since the run started
    stage: str
    overall: float
    eta_seconds: float | None


def eta_errors(samples: list[Sample], total: float) -> dict[float, float | None]:
    """Relative error of the time left shown at each quarter of ``total``."""
    errors: dict[float, float | None] = {}
    for quarter in QUARTERS:
        moment = quarter * total
        shown = [
            s for s in samples if s.seconds <= moment and s.eta_seconds is not None
        ]
        if not shown:
            errors[quarter] = None
            continue
        actual = total - moment
        predicted = shown[-1].eta_seconds - (moment - shown[-1].seconds)  # type: ignore[operator]  # filtered above
        errors[quarter] = abs(max(predicted, 0.0) - actual) / actual
    return errors


def longest_gap(samples: list[Sample]) -> float:
    """Longest silence between two reports (before the first, the child process
    is starting; after the last, the result is on its way)."""
    times = [s.seconds for s in samples]
    return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


def run_one(images: Path, workdir: Path, preset: Preset) -> dict[str, object]:
    samples: list[Sample] = []
    start = time.monotonic()

    def record(progress: Progress) -> None:
        samples.append(
            Sample(
                time.monotonic() - start,
                progress.stage,
                progress.overall if progress.overall is not None else -1.0,
                progress.eta_seconds,
            )
        )

    request = ReconstructionRequest.from_input_path(
        images, out_dir=workdir / "out", workdir=workdir / "work", preset=preset
    )
    result = run_isolated(request, time_limit_s=3600, on_progress=record)
    total = time.monotonic() - start
    sizes = []
    for path in request.images:
        with Image.open(path) as image:
            sizes.append(image.size)
    predicted = predict_stages(
        request,
        preset_config(preset),
        sizes,
        pairs=result.matching.pairs if result.matching else None,
        placed=result.images_registered,
    )
    stages = {
        t.stage: f"{t.seconds:.1f} s = {t.seconds / predicted[t.stage]:.2f} x model"
        for t in result.timings
    }
    overall_ok = all(b.overall >= a.overall for a, b in itertools.pairwise(samples))
    return {
        "photos": len(request.images),
        "seconds": round(total, 1),
        "errors": eta_errors(samples, total),
        "first_report": round(samples[0].seconds, 1),
        "longest_gap": round(longest_gap(samples), 2),
        "after_last_report": round(total - samples[-1].seconds, 1),
        "reports": len(samples),
        "bar_monotonic": overall_ok,
        "stages": stages,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--views", default="24,60")
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--preset", default="balanced")
    parser.add_argument("--root", type=Path, default=ROOT / "artifacts" / "eta")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    rows = []
    for views in (int(v) for v in args.views.split(",")):
        images = args.root / f"set-{views}-{args.size}"
        if not (images / "images").is_dir():
            generate(images, spec_for(views, width, height))
        with tempfile.TemporaryDirectory() as tmp:
            row = run_one(images / "images", Path(tmp), Preset(args.preset))
        rows.append(row)
        errors = row["errors"]
        assert isinstance(errors, dict)
        shown = "  ".join(
            f"{int(q * 100)} %: {'-' if e is None else f'{e:.0%}'}"
            for q, e in errors.items()
        )
        print(
            f"{views} photos, {args.preset}: {row['seconds']} s, {row['reports']} "
            f"reports, the first after {row['first_report']} s, longest gap "
            f"{row['longest_gap']} s, bar monotonic {row['bar_monotonic']}; "
            f"time-left error {shown}\n  {row['stages']}"
        )
    (args.root / "eta.json").write_text(json.dumps(rows, indent=1, default=str))


if __name__ == "__main__":
    main()
