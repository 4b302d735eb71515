"""Features and matching: SIFT with a focal prior, then pairs chosen by content."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

from projects.pipeline import engine
from projects.pipeline.presets import PresetConfig
from projects.pipeline.steps import backdrop, diagnose, pairs
from projects.pipeline.steps.ingest import IngestResult
from projects.pipeline.types import CountCallback, ignore_count

# Photos per extraction call after the first: enough for this many seconds, so
# progress moves while the per-call start-up stays small.
BATCH_SECONDS = 3.0
# ...and at least this many counts per stage, so a fast machine still shows the
# stage moving rather than jumping from a quarter to done.
MIN_REPORTS = 8


def _most_per_batch(total: int) -> int:
    return max(1, -(-total // MIN_REPORTS))


def _next_batch(seconds_per_item: float, *, least: int, most: int) -> int:
    """Items for about BATCH_SECONDS, at least ``least``, at most ``most``."""
    by_time = int(BATCH_SECONDS / max(seconds_per_item, 1e-4))
    return min(most, max(least, by_time))


def extract(
    ingested: IngestResult,
    database: Path,
    config: PresetConfig,
    threads: int | None,
    on_photo: CountCallback = ignore_count,
) -> dict[str, float]:
    """Extraction per camera group, so each group gets its own focal prior, in
    batches sharing the group's camera so progress can be counted per photo.

    Returns the photos whose still backdrop was masked, with the masked share.
    """
    if database.exists():
        database.unlink()
    mask_dir = database.parent / "masks"
    masked = backdrop.still_masks(
        ingested.image_dir,
        [(im.name, im.width, im.height) for im in ingested.images],
        mask_dir,
    )
    by_key = sorted(ingested.images, key=lambda im: im.camera_key)
    total, done = len(by_key), 0
    workers = threads or os.cpu_count() or 1
    most = min(_most_per_batch(total), 64)
    batch = min(2 * workers, most)
    for _, group_iter in groupby(by_key, key=lambda im: im.camera_key):
        group = list(group_iter)
        first = group[0]
        size = sift_size(max(first.width, first.height), config.sift_max_image_size)
        side = min(max(first.width, first.height), size)
        params = f"{first.focal_px:.3f},{first.width / 2:.3f},{first.height / 2:.3f},0"
        camera_id: int | None = None
        names = [im.name for im in group]
        while names:
            chunk, names = names[:batch], names[batch:]
            start = time.perf_counter()
            camera_id = engine.extract_features(
                database=database,
                image_dir=ingested.image_dir,
                names=chunk,
                camera_params=params,
                single_camera=True,
                max_image_size=size,
                max_features=config.sift_max_features,
                first_octave=-1 if side < config.sift_upsample_below else 0,
                threads=threads,
                mask_dir=mask_dir if masked else None,
                camera_id=camera_id,
            )
            per_photo = (time.perf_counter() - start) / len(chunk)
            batch = _next_batch(per_photo, least=workers, most=most)
            done += len(chunk)
            on_photo(done, total)
    engine.number_images_by_name(database)
    return masked


def sift_size(long_side: int, base: int) -> int:
    """Working size for SIFT: the preset's size, up to twice that for 12-24 MP
    photos, whose fine detail the preset size would throw away."""
    return base if long_side <= 2 * base else min(2 * base, long_side // 2)


@dataclass(frozen=True, slots=True)
class MatchSummary:
    strategy: str  # "exhaustive" or "retrieval", plus "+rescue" after a second pass
    reason: str
    pairs: int  # pairs matched
    verified: int  # pairs with enough geometrically consistent matches


def _capture_orders(ingested: IngestResult) -> list[list[int]]:
    """Capture-order priors: file-name order, and EXIF time order when every photo has
    one."""
    orders = [list(range(len(ingested.images)))]
    stamps = [im.captured_at for im in ingested.images]
    if all(stamps) and len(set(stamps)) == len(stamps):
        orders.append(sorted(range(len(stamps)), key=lambda i: (stamps[i], i)))
    return orders


class Matcher:
    """Matches the pairs a content-based plan picks, and more for unplaced photos."""

    def __init__(
        self,
        ingested: IngestResult,
        database: Path,
        config: PresetConfig,
        workdir: Path,
        threads: int | None,
    ) -> None:
        self.names = [im.name for im in ingested.images]
        self.database, self.workdir, self.threads = database, workdir, threads
        found = engine.read_features(database, self.names)
        self.plan = pairs.plan_pairs(
            [desc for _, desc in found],
            positions=[xy for xy, _ in found],
            neighbours=config.retrieval_neighbours,
            orders=_capture_orders(ingested),
        )
        self.done: set[pairs.Pair] = set(self.plan.pairs)
        self.strategy = self.plan.strategy

    def match_planned(self, on_pairs: CountCallback = ignore_count) -> MatchSummary:
        self._match(list(self.plan.pairs), "pairs.txt", on_pairs)
        return self.summary()

    def rescue(self, unplaced: list[str], budget: int) -> int:
        """Match unplaced photos with their next-best candidates; return pairs added."""
        index = {n: i for i, n in enumerate(self.names)}
        extra = pairs.rescue_pairs(
            [index[n] for n in unplaced], self.plan.neighbours, self.done, budget=budget
        )
        if extra:
            self._match(extra, "rescue_pairs.txt")
            self.strategy = f"{self.plan.strategy}+rescue"
        return len(extra)

    def summary(self) -> MatchSummary:
        verified = engine.verified_inliers(self.database)
        return MatchSummary(
            self.strategy,
            self.plan.reason,
            len(self.done),
            sum(1 for n in verified.values() if n >= diagnose.MIN_INLIERS),
        )

    def _match(
        self,
        chosen: list[pairs.Pair],
        file_name: str,
        on_pairs: CountCallback = ignore_count,
    ) -> None:
        """Match in batches of about BATCH_SECONDS each, counting pairs as they go."""
        pairs_file = self.workdir / file_name
        most = min(_most_per_batch(len(chosen)), 2000)
        batch, done = min(8 * (self.threads or os.cpu_count() or 1), most), 0
        while done < len(chosen):
            chunk = chosen[done : done + batch]
            pairs_file.write_text(
                "".join(f"{self.names[a]} {self.names[b]}\n" for a, b in chunk)
            )
            start = time.perf_counter()
            engine.match_pairs(
                database=self.database, pairs_file=pairs_file, threads=self.threads
            )
            per_pair = (time.perf_counter() - start) / len(chunk)
            batch = _next_batch(per_pair, least=8, most=most)
            done += len(chunk)
            on_pairs(done, len(chosen))
