"""Still backdrops: find what never moved relative to the camera, before SIFT.

On a rig the camera and the backdrop stay still while the object turns. A
textured backdrop then takes most of each photo's feature budget and every
one of its features sits at the same pixel in every photo, which says nothing
about the object. Each photo is compared with the photos that look most like
it (the same ring of a rig shares the same backdrop); a pixel that is the same
in most of them is masked, so SIFT spends its features on the object. On a
moving camera nothing is masked: no textured pixel stays put.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageFilter

WIDTH = 256  # working width of the comparison
PEERS = 8  # most similar photos compared with each photo
MAX_DIFF = 6.0  # grey levels: "the same pixel" after a light blur
MAX_MASKED = 0.9  # a photo that would lose more than this keeps everything


def _small(path: Path, size: tuple[int, int] | None) -> NDArray[np.float32]:
    with Image.open(path) as image:
        image.draft("L", (WIDTH * 2, WIDTH * 2))
        gray = image.convert("L")
        target = size or (WIDTH, max(1, round(gray.height * WIDTH / gray.width)))
        gray = gray.resize(target, Image.BILINEAR).filter(ImageFilter.BoxBlur(1))
    return np.asarray(gray, np.float32)


def still_masks(
    image_dir: Path, photos: Sequence[tuple[str, int, int]], mask_dir: Path
) -> dict[str, float]:
    """Write COLMAP masks (white = use) for photos with a still backdrop.

    Returns the share of each masked photo that was masked; photos without a
    still region get no mask file (COLMAP then uses the whole photo).
    """
    by_size: dict[tuple[int, int], list[str]] = {}
    for name, width, height in photos:  # sizes as ingest found them, upright
        by_size.setdefault((width, height), []).append(name)
    masked: dict[str, float] = {}
    for (width, height), group in sorted(by_size.items()):
        if len(group) < PEERS // 2 + 2:
            continue
        first = _small(image_dir / group[0], None)
        size = (first.shape[1], first.shape[0])
        stack = np.stack([first] + [_small(image_dir / n, size) for n in group[1:]])
        thumbs = stack[:, ::8, ::8].reshape(len(group), -1)
        distance = np.abs(thumbs[:, None, :] - thumbs[None, :, :]).mean(axis=2)
        np.fill_diagonal(distance, np.inf)
        peers = np.argsort(distance, axis=1, kind="stable")[:, :PEERS]
        need = (min(PEERS, len(group) - 1) + 1) // 2 + 1
        for i, name in enumerate(group):
            same = (np.abs(stack[peers[i]] - stack[i]) < MAX_DIFF).sum(axis=0)
            still = same >= need
            share = float(still.mean())
            if share < 0.02 or share > MAX_MASKED:
                continue
            mask_dir.mkdir(parents=True, exist_ok=True)
            keep = Image.fromarray(np.where(still, 0, 255).astype(np.uint8))
            keep = keep.filter(ImageFilter.MaxFilter(5))  # keep the object's rim
            keep.resize((width, height), Image.NEAREST).save(mask_dir / f"{name}.png")
            masked[name] = share
    return masked
