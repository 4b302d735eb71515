"""Progress from the real engine: reports inside every long stage, counted per item."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from projects.pipeline import Preset, Progress, ReconstructionRequest
from projects.pipeline.runner import run_isolated

# A balanced run with dense depth maps: minutes on a loaded 2-core machine.
pytestmark = [pytest.mark.engine, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def reports(turntable_set: Path, tmp_path_factory: pytest.TempPathFactory):
    """Every report of a balanced run (dense included), as the worker receives them:
    the first ring of the turntable set, 16 photos, keeps it to minutes."""
    base = tmp_path_factory.mktemp("progress_run")
    ring = tuple(sorted((turntable_set / "images").glob("*.jpg"))[:16])
    request = ReconstructionRequest(
        images=ring,
        out_dir=base / "out",
        workdir=base / "work",
        preset=Preset.BALANCED,
    )
    seen: list[Progress] = []
    result = run_isolated(request, time_limit_s=1200, on_progress=seen.append)
    return seen, result


def test_every_long_stage_counts_its_items_to_the_end(reports) -> None:
    seen, result = reports
    photos, placed = result.images_used, result.images_registered
    counts: dict[tuple[str, str], set[int]] = defaultdict(set)
    totals: dict[tuple[str, str], set[int]] = defaultdict(set)
    for p in seen:
        if p.unit:
            counts[(p.stage, p.unit)].add(p.done)
            totals[(p.stage, p.unit)].add(p.total)
    assert max(counts[("ingest", "photos read")]) == photos == 16
    # SIFT runs in batches: several counts on the way to every photo.
    assert len(counts[("features", "photos")]) >= 3
    assert max(counts[("features", "photos")]) == photos
    pairs = totals[("matching", "pairs matched")]
    assert len(pairs) == 1
    assert max(counts[("matching", "pairs matched")]) == max(pairs)
    assert len(counts[("matching", "pairs matched")]) >= 3
    assert max(counts[("sparse", "photos placed")]) == placed
    depth_maps = max(totals[("dense", "depth maps")])
    assert counts[("dense", "depth maps")] == set(range(1, depth_maps + 1))
    assert max(counts[("dense", "depth maps checked")]) == depth_maps
    assert max(counts[("texture", "photos painted")]) == max(
        totals[("texture", "photos painted")]
    )
    assert max(counts[("export", "files written")]) == 8


def test_fractions_move_inside_stages_and_the_whole_only_grows(reports) -> None:
    seen, _ = reports
    for stage in ("features", "matching", "sparse", "dense", "texture", "export"):
        inside = {round(p.fraction, 3) for p in seen if p.stage == stage}
        assert len({f for f in inside if 0 < f < 1}) >= 3, (stage, inside)
    overall = [p.overall for p in seen]
    assert all(o is not None for o in overall)
    assert overall == sorted(overall)
    assert overall[-1] == pytest.approx(1.0)
    # The time left is known from the first measured stage on, and ends at zero.
    etas = [p.eta_seconds for p in seen if p.stage != "ingest"]
    assert all(e is not None and e >= 0 for e in etas)
    assert etas[-1] == pytest.approx(0.0, abs=1.0)
