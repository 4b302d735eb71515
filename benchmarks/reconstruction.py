"""Reconstruction benchmark: baseline vs our presets on synthetic turntable sets.

``python -m benchmarks.reconstruction [--sets 48,108] [--methods baseline,balanced]``
renders the sets (cached in artifacts/bench/), runs each method in its own
process (so peak memory is that method's), scores it, and prints a table.

Baseline = exhaustive matching, SIFT at full size, Poisson on sparse points
(the issue's first row).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.score import score_result
from benchmarks.synthetic import generate, spec_for

ROOT = Path(__file__).resolve().parents[1]
SETS = {"48": (48, 1024, 768), "108": (108, 1600, 1200)}


def _run_one(method: str, images: Path, out_dir: Path) -> None:
    """Child-process entry: one method on one set; writes out_dir/report.json."""
    from projects.pipeline import (
        Preset,
        ReconstructionRequest,
        presets,
        reconstruct,
    )

    if method == "baseline":
        presets.PRESETS[Preset.FAST] = dataclasses.replace(
            presets.PRESETS[Preset.FAST],
            sift_max_image_size=3200,
            sift_max_features=8192,
            sift_upsample_below=2000,
            matching="exhaustive",
        )
        preset = Preset.FAST
    else:
        preset = Preset(method)
    request = ReconstructionRequest.from_input_path(
        images,
        out_dir=out_dir,
        workdir=out_dir.parent / f"{out_dir.name}_work",
        preset=preset,
    )
    reconstruct(request)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="48,108")
    parser.add_argument("--methods", default="baseline,balanced")
    parser.add_argument("--root", type=Path, default=ROOT / "artifacts" / "bench")
    parser.add_argument(
        "--run", nargs=3, metavar=("METHOD", "IMAGES", "OUT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.run:
        _run_one(args.run[0], Path(args.run[1]), Path(args.run[2]))
        return
    rows = []
    for set_name in args.sets.split(","):
        views, width, height = SETS[set_name]
        set_dir = args.root / f"set{set_name}"
        t0 = time.perf_counter()
        generate(
            set_dir, spec_for(views, width, height, supersample=2 if views <= 48 else 1)
        )
        print(f"set {set_name}: ready in {time.perf_counter() - t0:.0f} s", flush=True)
        for method in args.methods.split(","):
            out = args.root / f"out{set_name}_{method}"
            cmd = [
                sys.executable,
                "-m",
                "benchmarks.reconstruction",
                "--run",
                method,
                str(set_dir / "images"),
                str(out),
            ]
            t0 = time.perf_counter()
            done = subprocess.run(
                cmd, cwd=ROOT, capture_output=True, text=True, check=False
            )
            wall = time.perf_counter() - t0
            if done.returncode != 0:
                print(f"{set_name} {method}: FAILED\n{done.stderr[-2000:]}", flush=True)
                continue
            report = json.loads((out / "report.json").read_text())
            scores = score_result(out, set_dir)
            row = {
                "set": set_name,
                "method": method,
                "wall_s": round(wall, 1),
                "pipeline_s": report["seconds"],
                "registered": report["result"]["images_registered"],
                "views": views,
                "stages": {s["stage"]: s["seconds"] for s in report["stages"]},
                "peak_mib": max(s["peak_rss_bytes"] for s in report["stages"]) // 2**20,
                **{f"mesh_{k}": v for k, v in scores["mesh"].items()},
                **{f"points_{k}": v for k, v in scores["points"].items()},
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    (args.root / "results.json").write_text(json.dumps(rows, indent=1))
    print(
        "\n| set | method | time s | stages s | reg | peak MiB | mesh F@1% | mesh F@0.5% | visible F@0.5% | Chamfer |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        stages = " / ".join(f"{v:.0f}" for v in r["stages"].values())
        print(
            f"| {r['set']} | {r['method']} | {r['pipeline_s']:.0f} | {stages} | {r['registered']}/{r['views']} "
            f"| {r['peak_mib']} | {r['mesh_f1']:.3f} | {r['mesh_f05']:.3f} | {r['mesh_visible_f05']:.3f} "
            f"| {r['mesh_chamfer']:.4f} |"
        )


if __name__ == "__main__":
    main()
