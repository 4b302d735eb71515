"""Unit checks for the ring-aware pair list and the depth-map building blocks."""

from __future__ import annotations

import numpy as np

from projects.pipeline.steps.dense import _level, _TopMean
from projects.pipeline.steps.features import turntable_pairs


def test_turntable_pairs_reach_the_next_ring_and_close_the_loop() -> None:
    pairs = set(turntable_pairs(48, window=4))
    assert {(0, 1), (0, 4), (0, 47)} <= pairs  # neighbours and the wrap-around
    assert (0, 16) in pairs  # 3 rings of 16: same azimuth, next ring
    assert (0, 24) in pairs  # 2 rings of 24
    assert (0, 5) not in pairs
    assert len(pairs) < 48 * 47 // 2 / 2  # far fewer than exhaustive


def test_top_mean_is_the_mean_of_the_best_scores() -> None:
    rng = np.random.default_rng(0)
    scores = rng.uniform(-1, 1, (5, 4, 3)).astype(np.float32)
    top = _TopMean(3, (4, 3))
    for s in scores:
        top.add(s)
    expected = np.sort(scores, axis=0)[-3:].mean(axis=0)
    np.testing.assert_allclose(top.mean(), expected, rtol=1e-6)


def test_half_resolution_level_keeps_pixel_centres() -> None:
    k = np.array([[500.0, 0, 319.5], [0, 500.0, 239.5], [0, 0, 1]])
    gray = np.zeros((480, 640), np.float32)
    small, ks = _level(gray, 0.5, k)
    assert small.shape == (240, 320)
    np.testing.assert_allclose(ks[:2, :], [[250, 0, 159.5], [0, 250, 119.5]])
