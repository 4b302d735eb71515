"""Why a photo could not be placed, said in terms of that photo.

Generic shooting advice helps nobody who has already shot; this names the
photos and what is measurably wrong with each: too few features, blur or
darkness against the rest of the set, or too little overlap with its best
neighbour.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, ImageStat

MIN_INLIERS = 15  # what the camera solver needs to link two photos
_SIDE = 512


def _look(path: Path) -> tuple[float, float]:
    """Mean brightness (0-255) and a sharpness figure (variance of the Laplacian)."""
    with Image.open(path) as image:
        image.draft("L", (_SIDE, _SIDE))  # JPEG: decode at reduced size
        gray = image.convert("L")
        gray.thumbnail((_SIDE, _SIDE))
    edges = gray.filter(
        ImageFilter.Kernel((3, 3), (0, 1, 0, 1, -4, 1, 0, 1, 0), 1, 128)
    )
    return ImageStat.Stat(gray).mean[0], float(np.var(np.asarray(edges, np.float32)))


def explain_unplaced(
    unplaced: Sequence[str],
    names: Sequence[str],
    image_dir: Path,
    keypoints: dict[str, int],
    inliers: dict[tuple[str, str], int],
    other_models: Sequence[Sequence[str]] = (),
) -> dict[str, str]:
    """A reason per unplaced photo name."""
    separate = {name: group for group in other_models for name in group}
    looks = {n: _look(image_dir / n) for n in names}
    median_sharp = float(np.median([s for _, s in looks.values()])) or 1.0
    median_bright = float(np.median([b for b, _ in looks.values()])) or 1.0
    median_kp = float(np.median(list(keypoints.values()) or [0])) or 1.0
    best: dict[str, tuple[int, str]] = {}
    for (a, b), count in inliers.items():
        for me, other in ((a, b), (b, a)):
            if count > best.get(me, (-1, ""))[0]:
                best[me] = (count, other)
    out = {}
    for name in unplaced:
        bright, sharp = looks[name]
        kp = keypoints.get(name, 0)
        reasons = []
        if sharp < 0.35 * median_sharp:
            reasons.append(
                f"it is blurred (sharpness {sharp / median_sharp:.0%} of the set's "
                "median)"
            )
        if bright < 0.45 * median_bright or bright < 35:
            reasons.append(f"it is dark (brightness {bright:.0f} of 255)")
        if kp < 0.3 * median_kp:
            reasons.append(
                f"only {kp} points of detail were found (the set's median is "
                f"{median_kp:.0f})"
            )
        count, other = best.get(name, (0, ""))
        if name in separate:
            reasons.append(
                f"it was placed with {len(separate[name]) - 1} other photos in a "
                "separate model that shares too little with the main one: take "
                "photos between the two groups"
            )
        elif count < MIN_INLIERS * 2 and reasons:
            reasons.append(
                f"so it shares only {count} matching points with any other photo"
            )
        elif count < MIN_INLIERS * 2:
            partner = f" (best: {other})" if other else ""
            reasons.append(
                f"it shares only {count} matching points with any other "
                f"photo{partner}: "
                "too little overlap with its neighbours"
            )
        elif not reasons:
            reasons.append(
                f"it overlaps with {other} ({count} matching points) but its view "
                "could not be made consistent with the placed photos"
            )
        out[name] = "; ".join(reasons)
    return out


def summary_sentence(reasons: dict[str, str], limit: int = 4) -> str:
    """The first few reasons as one sentence for the page and the e-mail."""
    items = [f"{name}: {why}" for name, why in sorted(reasons.items())[:limit]]
    more = len(reasons) - limit
    tail = f"; and {more} more (see report.json)" if more > 0 else ""
    return "; ".join(items) + tail + "."
