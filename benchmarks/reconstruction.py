"""Reconstruction benchmark: the default preset against plain pycolmap on the
kinds of photo set users send, plus the real phone set.

``python -m benchmarks.reconstruction`` renders the synthetic sets (cached in
artifacts/bench/), runs each method in its own process (so peak memory is that
method's), scores it against the ground truth where there is one, and prints
a table: placed/total, reprojection error, F-scores, time per stage, peak
memory and the pair-selection strategy. ``--sets`` and ``--methods`` pick a
subset; ``--scaling`` prints how the number of matched pairs grows with the
number of photos (60, 130, 250, 500).

Sets: ring48/ring108 (ring order, as before), holed48 (a statuette with a
through-hole and a plinth), shuffled60 (Fibonacci path, file names in random
order), fib130 (OpenScan's default path, nearest-neighbour order), still36
(a textured backdrop that stays still while the object turns), stillfib80
(the same on a Fibonacci path in random file order, as on an OpenScan Mini),
mixed48 (two
camera bodies), dslr66 (hand-held 12 MP "DSLR" photos with Canon-style EXIF)
and monstree (23 real iPhone 7 photos from ../shared/data; no ground truth).

Methods: "balanced" (the default preset) and "pycolmap": plain pycolmap, i.e.
SIFT at COLMAP's default size, exhaustive matching, incremental mapping and a
Poisson surface on the sparse points.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.score import score_result
from benchmarks.synthetic import generate, spec_for

ROOT = Path(__file__).resolve().parents[1]
REAL_SETS = {"monstree": ROOT.parent / "shared" / "data" / "monstree-phone"}
# name: (views, width, height, extra TurntableSpec fields)
SETS: dict[str, tuple[int, int, int, dict[str, Any]]] = {
    "ring48": (48, 1024, 768, {"supersample": 2}),
    "ring108": (108, 1600, 1200, {"supersample": 1}),
    "holed48": (48, 1024, 768, {"supersample": 2, "shape": "holed"}),
    "shuffled60": (
        60,
        1024,
        768,
        {
            "supersample": 1,
            "path": "fibonacci",
            "order": "shuffled",
            "turntable": False,
        },
    ),
    "fib130": (
        130,
        1024,
        768,
        {"supersample": 1, "path": "fibonacci", "turntable": False},
    ),
    "still36": (36, 1024, 768, {"supersample": 1, "backdrop": "still"}),
    # OpenScan Mini: camera and backdrop still, the object turned on two axes.
    "stillfib80": (
        80,
        1024,
        768,
        {
            "supersample": 1,
            "path": "fibonacci",
            "order": "shuffled",
            "backdrop": "still",
            "turntable": False,
        },
    ),
    "mixed48": (48, 1024, 768, {"supersample": 1, "mixed_cameras": True}),
    "dslr66": (
        66,
        4272,
        2848,
        {"supersample": 1, "path": "handheld", "camera": "dslr", "turntable": False},
    ),
}
# name: (set it is made from, long side): the same photos upsampled to 12 MP,
# for memory and time at the sizes phones and DSLRs send.
UPSCALED = {"fib130_12mp": ("fib130", 4000), "fib500_12mp": ("scale500", 4000)}
# The pair curve: OpenScan's path at 640x480, 60 to 500 photos.
for _count in (60, 130, 250, 500):
    SETS[f"scale{_count}"] = (
        _count,
        640,
        480,
        {"supersample": 1, "path": "fibonacci", "turntable": False},
    )
DEFAULT_SETS = (
    "ring48,holed48,shuffled60,fib130,still36,stillfib80,mixed48,dslr66,monstree"
)


def _upscale(source: Path, target: Path, long_side: int) -> None:
    """Copy a set with every photo resized to ``long_side`` (EXIF kept)."""
    from PIL import Image

    marker = target / "cameras_gt.json"
    if marker.exists():
        return
    (target / "images").mkdir(parents=True, exist_ok=True)
    for photo in sorted((source / "images").iterdir()):
        with Image.open(photo) as im:
            scale = long_side / max(im.size)
            big = im.resize(
                (round(im.width * scale), round(im.height * scale)), Image.LANCZOS
            )
            big.save(target / "images" / photo.name, quality=92, exif=im.getexif())
    (target / "ground_truth.ply").write_bytes(
        (source / "ground_truth.ply").read_bytes()
    )
    marker.write_text((source / "cameras_gt.json").read_text())


def _run_one(method: str, images: Path, out_dir: Path) -> None:
    """Child-process entry: one method on one set; writes out_dir/report.json."""
    from projects.pipeline import Preset, ReconstructionRequest, presets, reconstruct

    if method == "pycolmap":
        presets.PRESETS[Preset.FAST] = dataclasses.replace(
            presets.PRESETS[Preset.FAST],
            sift_max_image_size=3200,
            sift_max_features=8192,
            sift_upsample_below=2000,
            retrieval_neighbours=10_000,  # every pair: exhaustive matching
            lighter_bundle_adjustment=False,
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


def _images_for(set_name: str, root: Path) -> tuple[Path, Path | None]:
    """The photo folder of a set, and its folder with ground truth (if any)."""
    if set_name in REAL_SETS:
        return REAL_SETS[set_name], None
    if set_name in UPSCALED:
        base, long_side = UPSCALED[set_name]
        _, source = _images_for(base, root)
        assert source is not None  # upscaled sets have ground truth
        _upscale(source, root / set_name, long_side)
        return root / set_name / "images", root / set_name
    views, width, height, extra = SETS[set_name]
    set_dir = root / set_name
    t0 = time.perf_counter()
    generate(set_dir, spec_for(views, width, height, **extra))
    print(f"set {set_name}: ready in {time.perf_counter() - t0:.0f} s", flush=True)
    return set_dir / "images", set_dir


def _row(
    set_name: str, method: str, out: Path, truth: Path | None, wall: float
) -> dict:
    report = json.loads((out / "report.json").read_text())
    result = report["result"]
    row: dict[str, Any] = {
        "set": set_name,
        "method": method,
        "wall_s": round(wall, 1),
        "pipeline_s": report["seconds"],
        "registered": result["images_registered"],
        "views": result["images_total"],
        "reproj_px": result["mean_reprojection_error"],
        "matching": (result.get("matching") or {}).get("strategy", "?"),
        "pairs": (result.get("matching") or {}).get("pairs", 0),
        "stages": {s["stage"]: s["seconds"] for s in report["stages"]},
        "peak_mib": max(s["peak_rss_bytes"] for s in report["stages"]) // 2**20,
    }
    if truth is not None:
        scores = score_result(out, truth)
        row |= {f"mesh_{k}": v for k, v in scores["mesh"].items()}
    return row


def run_sets(sets: list[str], methods: list[str], root: Path) -> list[dict]:
    rows = []
    for set_name in sets:
        images, truth = _images_for(set_name, root)
        for method in methods:
            out = root / f"out_{set_name}_{method}"
            cmd = [sys.executable, "-m", "benchmarks.reconstruction", "--run"]
            t0 = time.perf_counter()
            done = subprocess.run(
                [*cmd, method, str(images), str(out)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=False,
            )
            wall = time.perf_counter() - t0
            if done.returncode != 0:
                tail = done.stderr.strip().splitlines()[-1:] or ["?"]
                print(f"{set_name} {method}: FAILED after {wall:.0f} s: {tail[0]}")
                rows.append({"set": set_name, "method": method, "failed": tail[0]})
                continue
            row = _row(set_name, method, out, truth, wall)
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def print_table(rows: list[dict]) -> None:
    print(
        "\n| set | method | placed | reproj px | F@1% | F@0.5% | visible F@0.5% "
        "| time s | stages s "
        "(ingest/features/matching/sparse/dense/mesh/texture/export) "
        "| peak MiB | pairs |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "failed" in r:
            print(f"| {r['set']} | {r['method']} | failed: {r['failed']} |||||||||")
            continue
        stages = " / ".join(f"{v:.0f}" for v in r["stages"].values())
        f1 = f"{r['mesh_f1']:.3f}" if "mesh_f1" in r else "-"
        f05 = f"{r['mesh_f05']:.3f}" if "mesh_f05" in r else "-"
        vf05 = f"{r['mesh_visible_f05']:.3f}" if "mesh_visible_f05" in r else "-"
        print(
            f"| {r['set']} | {r['method']} | {r['registered']}/{r['views']} "
            f"| {r['reproj_px']:.2f} | {f1} | {f05} | {vf05} | {r['pipeline_s']:.0f} "
            f"| {stages} | {r['peak_mib']} | {r['pairs']} ({r['matching']}) |"
        )


def scaling(root: Path, counts: tuple[int, ...] = (60, 130, 250, 500)) -> None:
    """Matched pairs against the number of photos (features and matching only)."""
    from projects.pipeline import presets
    from projects.pipeline.steps import features, ingest
    from projects.pipeline.types import Preset

    config = presets.PRESETS[Preset.BALANCED]
    print(
        "\n| photos | pairs matched | pairs / photo | exhaustive would be | matching "
        "s |"
    )
    print("|---|---|---|---|---|")
    for count in counts:
        images, _ = _images_for(f"scale{count}", root)
        work = root / f"scale{count}_work"
        paths = tuple(sorted(images.iterdir()))
        ingested = ingest.ingest(paths, work, max_pixels=40_000_000, max_images=500)
        database = work / "database.db"
        features.extract(ingested, database, config, None)
        t0 = time.perf_counter()
        matcher = features.Matcher(ingested, database, config, work, None)
        summary = matcher.match_planned()
        seconds = time.perf_counter() - t0
        print(
            f"| {count} | {summary.pairs} | {summary.pairs / count:.1f} "
            f"| {count * (count - 1) // 2} | {seconds:.0f} |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default=DEFAULT_SETS)
    parser.add_argument("--methods", default="balanced,pycolmap")
    parser.add_argument("--scaling", action="store_true", help="print the pair curve")
    parser.add_argument("--root", type=Path, default=ROOT / "artifacts" / "bench")
    parser.add_argument(
        "--run", nargs=3, metavar=("METHOD", "IMAGES", "OUT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.run:
        _run_one(args.run[0], Path(args.run[1]), Path(args.run[2]))
        return
    args.root.mkdir(parents=True, exist_ok=True)
    if args.scaling:
        scaling(args.root)
        return
    rows = run_sets(args.sets.split(","), args.methods.split(","), args.root)
    (args.root / "results.json").write_text(json.dumps(rows, indent=1))
    print_table(rows)


if __name__ == "__main__":
    main()
