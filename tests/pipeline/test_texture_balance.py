"""Exposure balancing between photos before they are blended into the texture."""

from __future__ import annotations

import numpy as np

from projects.pipeline.steps.texture import _exposure_gains


def test_a_brighter_photo_is_brought_back_to_the_others() -> None:
    rng = np.random.default_rng(0)
    truth = rng.uniform(30, 200, (5000, 3)).astype(np.float32)
    idx = np.arange(5000)
    weight = np.ones(5000, np.float32)
    exposures = [1.0, 1.0, 1.5]  # the third photo was shot one half stop brighter
    samples = [(idx, truth * e, weight) for e in exposures]
    gains = _exposure_gains(samples, len(truth))
    balanced = [truth * e * g for e, g in zip(exposures, gains, strict=True)]
    np.testing.assert_allclose(balanced[2], balanced[0], rtol=0.02)
    # The set keeps its own overall exposure: most photos are left as they were.
    np.testing.assert_allclose(gains[0], [1.0, 1.0, 1.0], rtol=0.02)


def test_photos_sharing_too_little_keep_their_colours() -> None:
    idx_a, idx_b = np.arange(100), np.arange(100, 200)
    colours = np.full((100, 3), 120.0, np.float32)
    weight = np.ones(100, np.float32)
    gains = _exposure_gains(
        [(idx_a, colours, weight), (idx_b, colours * 2, weight)], 200
    )
    np.testing.assert_allclose(gains, np.ones((2, 3)))
