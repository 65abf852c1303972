"""Where the page ends: the desk or table around a photographed sheet.

A sheet lying on a desk meets it along a sharp step in brightness, while the edge of a
cast shadow is a soft ramp. Cutting the photo along its sharp steps leaves the page as
one region (shadows and all); the regions beyond them that reach the frame and are
clearly darker than the page are the desk. Marks there (the desk's grain, the sheet's
corner against it) would otherwise be read as lone digits. No JAX needed.
"""

from __future__ import annotations

import cv2
import numpy as np

# Steps are found at half resolution: cheap, and a printed rule (1-3 px) is then thin
# enough for a 3-px closing to remove it.
_SCALE = 2
# A step is the page's edge when it is at least _STEP of the lit paper's brightness and
# at least _SHARP of it (over 9 px) is reached within 3 px: a shadow's penumbra is far
# wider, the edge of a sheet is blurred by the lens only.
_STEP = 0.15
_SHARP = 0.4
# A region beyond such steps is desk when it reaches the frame, covers at least _MIN_AREA
# of it, and its mean brightness is under _DARK of the page's.
_DARK = 0.8
_MIN_AREA = 0.001
# The desk's marks reach over the step onto the sheet's very edge by a few pixels.
_REACH = 3


def _steps(small: np.ndarray) -> np.ndarray:
    """Pixels of sharp, strong brightness steps (uint8 grey at reduced size), widened by
    a pixel so that a diagonal edge is a closed wall."""
    closed = cv2.morphologyEx(small, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    lit = float(np.percentile(closed[::2, ::2], 95))
    near = cv2.morphologyEx(closed, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    wide = cv2.morphologyEx(closed, cv2.MORPH_GRADIENT, np.ones((9, 9), np.uint8))
    near, wide = near.astype(np.float32), wide.astype(np.float32)
    wall = (near >= _SHARP * wide) & (near >= _STEP * lit)
    return cv2.dilate(wall.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0


def desk_mask(grey: np.ndarray) -> np.ndarray:
    """Boolean mask (``grey``'s shape) of the desk around the page: all False when the
    page fills the frame or no sharp edge separates it from its surroundings.

    ``grey`` is uint8 with the paper bright (light-on-dark pages inverted first). The
    page is the largest region between sharp steps; a photo mostly of desk with a small
    note on it is thus left alone rather than cut wrongly."""
    h, w = grey.shape
    if min(h, w) < 8 * _SCALE:
        return np.zeros((h, w), bool)
    small = cv2.resize(grey, (w // _SCALE, h // _SCALE), interpolation=cv2.INTER_AREA)
    wall = _steps(small)
    n, labels, stats, _ = cv2.connectedComponentsWithStats((~wall).astype(np.uint8), connectivity=4)
    if n <= 2:
        return np.zeros((h, w), bool)
    sh, sw = small.shape
    x, y, cw, ch, area = (stats[:, i].astype(np.int64) for i in range(5))
    area[0] = 0  # label 0 is the wall itself
    mean = np.bincount(labels.ravel(), weights=small.ravel(), minlength=n) / np.maximum(area, 1)
    page = int(np.argmax(area))
    frame = (x == 0) | (y == 0) | (x + cw >= sw) | (y + ch >= sh)
    desk = frame & (area >= _MIN_AREA * sh * sw) & (mean < _DARK * mean[page])
    desk[[0, page]] = False
    if not desk.any():
        return np.zeros((h, w), bool)
    zone = cv2.dilate(desk[labels].astype(np.uint8), np.ones((2 * _REACH + 1,) * 2, np.uint8))
    return cv2.resize(zone, (w, h), interpolation=cv2.INTER_NEAREST) > 0
