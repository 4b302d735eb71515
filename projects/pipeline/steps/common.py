"""What several stages share: a cloud's robust size and one way to load a photo."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from projects.pipeline.engine import SparseCamera


def robust_diagonal(points: NDArray[np.float64]) -> float:
    """Bounding-box diagonal of the 1st-99th percentiles: stray points don't count."""
    lo, hi = np.percentile(points, [1, 99], axis=0)
    return float(np.linalg.norm(hi - lo))


def load_photo(
    cam: SparseCamera, image_dir: Path, max_size: int
) -> tuple[NDArray[np.uint8], NDArray[np.float64]]:
    """A placed photo (BGR) at most ``max_size`` on its long side, undistorted.

    Returns the pixels and the intrinsics scaled to them (pixel centres at 0).
    """
    bgr = cv2.imread(str(image_dir / cam.name), cv2.IMREAD_COLOR)
    scale = min(1.0, max_size / max(cam.width, cam.height))
    w, h = round(cam.width * scale), round(cam.height * scale)
    sx, sy = w / cam.width, h / cam.height
    small = cv2.resize(bgr, (w, h), interpolation=cv2.INTER_AREA) if scale < 1 else bgr
    K = np.array(
        [
            [cam.K[0, 0] * sx, 0, cam.K[0, 2] * sx - 0.5],
            [0, cam.K[1, 1] * sy, cam.K[1, 2] * sy - 0.5],
            [0, 0, 1],
        ]
    )
    if abs(cam.radial) > 1e-6:  # SIMPLE_RADIAL k1 is OpenCV's k1 on normalised coords
        small = cv2.undistort(small, K, np.array([cam.radial, 0, 0, 0]))
    return small, K
