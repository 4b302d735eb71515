"""The time-left model: predictions from the set's size, corrected by the real pace."""

from __future__ import annotations

from dataclasses import replace

import pytest

from projects.pipeline.eta import Estimator, Workload, predict
from projects.pipeline.orchestrate import STAGES as PIPELINE_STAGES
from projects.pipeline.runner import _counted_down
from projects.pipeline.types import Progress

STAGES = ("a", "b", "c", "d")
WORK = Workload(
    photos=24,
    photo_megapixels=24 * 0.3,
    sift_megapixels=24 * 0.3,
    sift_features=4096,
    pairs=276,
    depth_maps=24,
    dense_megapixels=0.17,
    dense_planes=40,
    dense_neighbours=5,
    poisson_depth=8,
    texture_megapixels=4.2,
    texture_photo_megapixels=24 * 0.8,
)


def test_predictions_grow_with_the_work_of_each_stage() -> None:
    base = predict(WORK)
    bigger = predict(replace(WORK, photos=60, sift_megapixels=60 * 0.3, pairs=1770))
    assert set(base) == set(PIPELINE_STAGES)
    assert all(seconds > 0 for seconds in base.values())
    for stage in ("features", "matching", "sparse"):
        assert bigger[stage] > 2 * base[stage]
    assert bigger["mesh"] == base["mesh"]  # the octree, not the photos, sets it
    # A preset without dense pays a little per photo for normals instead.
    assert predict(replace(WORK, depth_maps=0))["dense"] < base["dense"] / 10


def test_the_bar_is_weighted_by_predicted_durations() -> None:
    est = Estimator(STAGES, {"a": 10, "b": 10, "c": 70, "d": 10})
    est.finish("a", 10)
    est.finish("b", 10)
    # Half of the long stage is further along than half of the stages.
    halfway = est.estimate("c", 0.5, 35)
    assert halfway.overall == pytest.approx((20 + 35) / 100)
    assert est.estimate("d", 1.0, 10).overall == pytest.approx(1.0)


def test_a_slow_machine_stretches_the_time_left() -> None:
    est = Estimator(STAGES, dict.fromkeys(STAGES, 100.0))
    fresh = est.estimate("a", 0.0, 0.0)
    assert fresh.eta_seconds is None  # nothing measured yet
    est.finish("a", 200)  # this machine runs at half the model's speed
    est.finish("b", 200)
    start_c = est.estimate("c", 0.0, 0.0)
    assert start_c.eta_seconds == pytest.approx(400, rel=0.05)
    fast = Estimator(STAGES, dict.fromkeys(STAGES, 100.0))
    fast.finish("a", 50)
    fast.finish("b", 50)
    assert fast.estimate("c", 0.0, 0.0).eta_seconds == pytest.approx(100, rel=0.1)


def test_a_stalled_stage_counts_down_and_the_bar_still_moves() -> None:
    est = Estimator(STAGES, dict.fromkeys(STAGES, 100.0))
    est.finish("a", 100)
    early = est.estimate("b", 0.0, 10)
    later = est.estimate("b", 0.0, 60)
    assert later.eta_seconds < early.eta_seconds
    assert later.overall > early.overall  # by time, below the stage's end
    assert est.estimate("b", 0.0, 500).overall < 0.5


def test_the_stage_own_pace_takes_over_as_it_progresses() -> None:
    est = Estimator(STAGES, dict.fromkeys(STAGES, 100.0))
    est.finish("a", 100)
    # Stage b runs at four times the predicted pace: 90 % done after 22.5 s.
    nearly = est.estimate("b", 0.9, 22.5)
    own_left = 22.5 * 0.1 / 0.9
    # The later stages are sped up by the pace measured so far (a and 90 % of b).
    scale = (100 + 22.5 + 10) / (100 + 90 + 10)
    assert nearly.eta_seconds == pytest.approx(scale * 200 + own_left, rel=0.05)
    assert nearly.eta_seconds < est.estimate("b", 0.1, 2.5).eta_seconds


def test_revised_predictions_replace_the_guess() -> None:
    est = Estimator(STAGES, dict.fromkeys(STAGES, 10.0))
    est.finish("a", 10)
    est.revise({"c": 1000.0})
    assert est.estimate("b", 0.0, 0.0).eta_seconds > 900


def test_the_worker_counts_down_a_silent_stage_but_not_to_zero() -> None:
    last = Progress("mesh", 5, 8, 0.1, {"points": 3}, "hi", overall=0.6, eta_seconds=50)
    later = _counted_down(last, 20)
    assert (later.eta_seconds, later.overall, later.stage) == (30, 0.6, "mesh")
    assert (later.message, later.counters) == ("", {})
    assert _counted_down(last, 500).eta_seconds == 5
    unknown = replace(last, eta_seconds=None)
    assert _counted_down(unknown, 5).eta_seconds is None
