"""Unit checks for the ring-aware pair list and the depth-map building blocks."""

from __future__ import annotations

import numpy as np

from projects.pipeline.steps.dense import _level, _TopMean
from projects.pipeline.steps.pairs import moving_features, plan_pairs, rescue_pairs


def _photo_descriptors(count: int, seed: int = 0) -> tuple[list[np.ndarray], list[int]]:
    """Descriptors of ``count`` photos in a ring: each shares a pool with its
    ring neighbours only. Returned shuffled, with the true ring position of each."""
    rng = np.random.default_rng(seed)
    pools = rng.integers(0, 255, (count, 300, 128)).astype(np.uint8)
    photos = [
        np.concatenate([pools[(i + d) % count] for d in (-1, 0, 1)])
        for i in range(count)
    ]
    order = [int(i) for i in rng.permutation(count)]
    return [photos[i] for i in order], order


def test_retrieval_finds_ring_neighbours_whatever_the_file_order() -> None:
    descriptors, ring_pos = _photo_descriptors(60)
    plan = plan_pairs(descriptors, neighbours=6)
    assert plan.strategy == "retrieval"
    pos_to_index = {p: i for i, p in enumerate(ring_pos)}
    pairs = set(plan.pairs)
    for p in range(60):  # every true neighbour pair is among the matched pairs
        a, b = pos_to_index[p], pos_to_index[(p + 1) % 60]
        assert (min(a, b), max(a, b)) in pairs
    assert len(pairs) <= 60 * 6  # linear in the number of photos, not quadratic


def test_small_sets_are_matched_exhaustively() -> None:
    descriptors, _ = _photo_descriptors(12)
    plan = plan_pairs(descriptors, neighbours=6)
    assert plan.strategy == "exhaustive"
    assert len(plan.pairs) == 12 * 11 // 2


def test_the_same_photos_give_the_same_pairs() -> None:
    descriptors, _ = _photo_descriptors(40, seed=3)
    first = plan_pairs(descriptors, neighbours=5)
    again = plan_pairs([d.copy() for d in descriptors], neighbours=5)
    assert first.pairs == again.pairs


def test_capture_order_adds_pairs_but_content_stays() -> None:
    descriptors, _ = _photo_descriptors(40, seed=4)
    content = set(plan_pairs(descriptors, neighbours=5).pairs)
    with_order = set(plan_pairs(descriptors, neighbours=5, orders=[range(40)]).pairs)
    assert content < with_order
    assert (0, 1) in with_order


def test_rescue_offers_unmatched_candidates_in_similarity_order() -> None:
    descriptors, _ = _photo_descriptors(30, seed=5)
    plan = plan_pairs(descriptors, neighbours=4)
    done = set(plan.pairs)
    extra = rescue_pairs([7], plan.neighbours, done, budget=100)
    assert len(extra) == 29 - sum(1 for a, b in plan.pairs if 7 in (a, b))
    assert all(7 in pair for pair in extra)
    assert not set(extra) & set(plan.pairs)


def test_keypoints_of_a_still_backdrop_are_told_apart() -> None:
    rng = np.random.default_rng(6)
    backdrop = rng.uniform(0, 1000, (400, 2)).astype(np.float32)
    photos = [
        np.concatenate([backdrop, rng.uniform(0, 1000, (400, 2)).astype(np.float32)])
        for _ in range(20)
    ]
    moving = moving_features(photos)
    for keep in moving:
        assert not keep[:400].any()  # the backdrop sits still in every photo
        assert keep[400:].mean() > 0.97  # the object's keypoints move


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


def test_spread_cameras_cover_the_ring_whatever_the_file_order() -> None:
    from projects.pipeline.engine import SparseCamera, SparseModel
    from projects.pipeline.steps.sparse import spread_cameras

    angles = np.random.default_rng(8).permutation(
        np.linspace(0, 2 * np.pi, 60, endpoint=False)
    )
    cameras = tuple(
        SparseCamera(
            name=f"IMG_{i:04d}.jpg",
            width=640,
            height=480,
            K=np.eye(3),
            radial=0.0,
            R=np.eye(3),
            t=-np.array([np.cos(a), np.sin(a), 0.0]),
        )
        for i, a in enumerate(angles)
    )
    model = SparseModel(
        cameras,
        np.zeros((0, 3)),
        np.zeros((0, 3), np.uint8),
        np.zeros(0, np.int32),
        np.zeros(0),
        (),
        0.0,
    )
    chosen = spread_cameras(model, 12)
    assert len(chosen) == 12
    picked = np.sort(angles[chosen])
    gaps = np.diff(np.concatenate([picked, picked[:1] + 2 * np.pi]))
    assert gaps.max() < 2 * (2 * np.pi / 12)  # no side of the object left out
