"""Features and matching: SIFT with a focal prior, then ring-aware pair matching."""

from __future__ import annotations

from itertools import groupby
from pathlib import Path

from projects.pipeline import engine
from projects.pipeline.presets import PresetConfig
from projects.pipeline.steps.ingest import IngestResult


def extract(
    ingested: IngestResult, database: Path, config: PresetConfig, threads: int | None
) -> None:
    """One extraction call per camera group, so each group gets its own focal prior."""
    if database.exists():
        database.unlink()
    by_key = sorted(ingested.images, key=lambda im: im.camera_key)
    for _, group_iter in groupby(by_key, key=lambda im: im.camera_key):
        group = list(group_iter)
        first = group[0]
        side = min(max(first.width, first.height), config.sift_max_image_size)
        params = f"{first.focal_px:.3f},{first.width / 2:.3f},{first.height / 2:.3f},0"
        engine.extract_features(
            database=database,
            image_dir=ingested.image_dir,
            names=[im.name for im in group],
            camera_params=params,
            single_camera=True,
            max_image_size=config.sift_max_image_size,
            max_features=config.sift_max_features,
            first_octave=-1 if side < config.sift_upsample_below else 0,
            threads=threads,
        )


def turntable_pairs(count: int, window: int) -> list[tuple[int, int]]:
    """Pairs for photos taken in capture order around one or more rings.

    Neighbours within ``window`` (the ring itself), plus strides that reach the
    same azimuth on the next ring when the photos form 2, 3 or 4 equal rings,
    plus one stride of ``2 * window``; all modulo the sequence length, so the
    first and last photos of a ring close the loop. Measured on the 48-view
    set: 288-384 pairs instead of 1128 exhaustive, every photo placed, camera
    centres as accurate as exhaustive matching.
    """
    strides = {2 * window} | {round(count / rings) for rings in (2, 3, 4)}
    pairs: set[tuple[int, int]] = set()
    for i in range(count):
        for k in range(1, window + 1):
            pairs.add((i, (i + k) % count))
        for stride in strides:
            if window < stride < count:
                pairs.add((i, (i + stride) % count))
    return sorted({(min(a, b), max(a, b)) for a, b in pairs if a != b})


def match(
    ingested: IngestResult,
    database: Path,
    config: PresetConfig,
    workdir: Path,
    threads: int | None,
) -> int:
    """Match image pairs chosen by the preset; return the number of verified pairs."""
    names = [im.name for im in ingested.images]
    method = config.matching
    if method == "exhaustive" or len(names) <= 30:
        return engine.match_features(
            database=database,
            method="exhaustive",
            pairs_file=None,
            overlap=0,
            threads=threads,
        )
    if method == "sequential":
        return engine.match_features(
            database=database,
            method="sequential",
            pairs_file=None,
            overlap=10,
            threads=threads,
        )
    pairs_file = workdir / "pairs.txt"
    pairs = turntable_pairs(len(names), window=config.match_window)
    pairs_file.write_text("".join(f"{names[a]} {names[b]}\n" for a, b in pairs))
    return engine.match_features(
        database=database,
        method="pairs",
        pairs_file=pairs_file,
        overlap=0,
        threads=threads,
    )
