"""Time left for a reconstruction: a small cost model, corrected as stages finish.

Each stage's seconds are predicted from the set's size (photos, pixels, pairs,
depth maps, texture size) with rates measured on the benchmark machine
(``python -m benchmarks.eta``). A running reconstruction then scales every
prediction by how fast this machine has really been so far (measured seconds
over predicted seconds of the stages done, the current one included), and the
current stage's own rate takes over as its fraction grows. No engine imports.
"""

from __future__ import annotations

from dataclasses import dataclass

# Seconds per unit of work, from the 2-core development machine when quiet
# (balanced preset, 24- and 60-photo sets; ``python -m benchmarks.eta`` prints
# measured/model per stage). A run rescales them by its own pace, but only after
# PRIOR_SECONDS of evidence, so the level matters for short runs and the ratios
# between stages for all.
RATES = {
    "ingest": 0.0045,  # per photo megapixel decoded
    "masks": 0.004,  # per photo (still-backdrop check)
    "features": 0.2,  # per SIFT megapixel
    "matching": 0.0074,  # per pair at 4,096 features per photo, in batches
    "sparse": 0.0066,  # per photos**1.5
    "dense": 0.0071,  # per depth map x megapixel x plane x neighbour
    "normals": 0.01,  # per photo, when a preset skips dense
    "mesh": 3.9,  # per Poisson octree at depth 8
    "texture_atlas": 0.62,  # per texture megapixel
    "texture_photos": 0.1,  # per photo megapixel sampled
    "export": 0.34,  # per texture megapixel (image encoding dominates)
}
# The measured rate only earns trust as real seconds accumulate: the first
# PRIOR_SECONDS of predictions count as if the model had been exactly right.
PRIOR_SECONDS = 3.0


@dataclass(frozen=True, slots=True)
class Workload:
    """What a set asks of each stage; the orchestrator fills in what it knows."""

    photos: int
    photo_megapixels: float  # summed over the photos
    sift_megapixels: float  # summed working SIFT pixels (x4 when upsampled)
    sift_features: int
    pairs: int
    depth_maps: int  # 0 when the preset skips dense
    dense_megapixels: float  # one depth map's pixels
    dense_planes: int
    dense_neighbours: int
    poisson_depth: int
    texture_megapixels: float  # the atlas, plus the preview's when there is one
    texture_photo_megapixels: float  # summed over the photos sampled


def predict(work: Workload) -> dict[str, float]:
    """Predicted seconds per stage on the benchmark machine."""
    r = RATES
    dense = (
        r["dense"]
        * work.depth_maps
        * work.dense_megapixels
        * work.dense_planes
        * work.dense_neighbours
        if work.depth_maps
        else r["normals"] * work.photos
    )
    return {
        "ingest": r["ingest"] * work.photo_megapixels + 0.002 * work.photos,
        "features": r["features"] * work.sift_megapixels + r["masks"] * work.photos,
        "matching": r["matching"] * work.pairs * (work.sift_features / 4096) ** 2,
        "sparse": r["sparse"] * work.photos**1.5,
        "dense": dense,
        "mesh": r["mesh"] * 8.0 ** (work.poisson_depth - 8),
        "texture": r["texture_atlas"] * work.texture_megapixels
        + r["texture_photos"] * work.texture_photo_megapixels,
        "export": r["export"] * work.texture_megapixels,
    }


@dataclass(frozen=True, slots=True)
class Estimate:
    overall: float  # 0..1, weighted by predicted stage durations
    eta_seconds: float | None  # None until a stage has been measured


class Estimator:
    """Tracks finished stages' real seconds against their predictions."""

    def __init__(self, stages: tuple[str, ...], predicted: dict[str, float]) -> None:
        self.stages = stages
        self.predicted = dict(predicted)
        self.measured: dict[str, float] = {}

    def revise(self, predicted: dict[str, float]) -> None:
        """New predictions once the set's size is known better (photos, pairs)."""
        self.predicted.update(predicted)

    def finish(self, stage: str, seconds: float) -> None:
        self.measured[stage] = seconds

    def _share(self, stage: str, fraction: float) -> float:
        return self.predicted.get(stage, 0.0) * min(max(fraction, 0.0), 1.0)

    def estimate(self, stage: str, fraction: float, stage_seconds: float) -> Estimate:
        """Where a run stands ``stage_seconds`` into ``stage``, ``fraction`` done."""
        index = self.stages.index(stage)
        done, ahead = self.stages[:index], self.stages[index + 1 :]
        fraction = min(max(fraction, 0.0), 1.0)
        total = sum(self.predicted.get(s, 0.0) for s in self.stages) or 1.0
        predicted_done = sum(self.predicted.get(s, 0.0) for s in done)
        current = self.predicted.get(stage, 0.0)
        # The pace so far: stages done, and the current one once it reports a
        # fraction (a stalled fraction would read as a slow machine).
        real = sum(self.measured.get(s, 0.0) for s in done)
        expected = predicted_done
        if fraction > 0.05:
            real, expected = real + stage_seconds, expected + current * fraction
        scale = (real + PRIOR_SECONDS) / (expected + PRIOR_SECONDS)
        # The bar: a stage that reports coarsely (one engine call) still moves
        # with its expected duration, short of its end.
        by_time = min(stage_seconds / (scale * current), 0.95) if current else 0.0
        overall = (predicted_done + current * max(fraction, by_time)) / total
        if real + stage_seconds <= 0:
            return Estimate(round(overall, 4), None)
        expected_stage = scale * current
        # A fraction that stalls while time passes (one long engine call) must
        # not hold the estimate still: the stage's predicted length minus the
        # time spent bounds it, down to a tenth of what the fraction says.
        left = min(
            expected_stage * (1.0 - fraction),
            max(expected_stage - stage_seconds, 0.1 * expected_stage * (1 - fraction)),
        )
        if fraction > 0.05 and stage_seconds > 0:
            # The stage's own pace, trusted in proportion to how far it got.
            own = stage_seconds * (1.0 - fraction) / fraction
            left = fraction * own + (1.0 - fraction) * left
        rest = scale * sum(self.predicted.get(s, 0.0) for s in ahead)
        return Estimate(round(overall, 4), round(left + rest, 1))
