"""Reading order: boxes -> lines (top to bottom) of digits (left to right) -> numbers.

Photos are rarely square to the page, so lines are found after removing the page's
overall skew, and each box is compared with its horizontal neighbours in a line rather
than with the whole line (tolerates curved lines and digits of different heights).
Also the boxes' overlaps (``iou_matrix``), by which extraction is measured and the crop
verifier's training crops are labelled against the truth.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

Box = Sequence[float]  # x, y, w, h

# Two boxes whose centres are this many heights apart horizontally, or less, may pair up
# when estimating the skew of the page.
_SKEW_REACH = 4.0
_MAX_SKEW_DEG = 20.0


def _as_array(boxes: Sequence[Box]) -> np.ndarray:
    arr = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    arr[:, 2:] = np.maximum(arr[:, 2:], 1.0)
    return arr


def intersections(a: Sequence[Box], b: Sequence[Box]) -> np.ndarray:
    """Pairwise intersection areas of (x, y, w, h) boxes, shape (len(a), len(b))."""
    p = np.asarray(a, np.float64).reshape(-1, 1, 4)
    q = np.asarray(b, np.float64).reshape(1, -1, 4)
    dx = np.minimum(p[..., 0] + p[..., 2], q[..., 0] + q[..., 2]) - np.maximum(p[..., 0], q[..., 0])
    dy = np.minimum(p[..., 1] + p[..., 3], q[..., 1] + q[..., 3]) - np.maximum(p[..., 1], q[..., 1])
    return np.clip(dx, 0, None) * np.clip(dy, 0, None)


def areas(boxes: Sequence[Box]) -> np.ndarray:
    """Each (x, y, w, h) box's area."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    return b[:, 2] * b[:, 3]


def iou_matrix(a: Sequence[Box], b: Sequence[Box]) -> np.ndarray:
    """Pairwise intersection over union of (x, y, w, h) boxes, shape (len(a), len(b))."""
    inter = intersections(a, b)
    union = areas(a)[:, None] + areas(b)[None, :] - inter
    return inter / np.maximum(union, 1e-9)


def estimate_skew(boxes: Sequence[Box]) -> float:
    """Page skew in radians, from the direction of each box to its nearest right-hand
    neighbour at about the same height (median over pairs; 0 if there are none)."""
    b = _as_array(boxes)
    if len(b) < 2:
        return 0.0
    cx, cy, h = b[:, 0] + b[:, 2] / 2, b[:, 1] + b[:, 3] / 2, b[:, 3]
    angles = []
    limit = math.tan(math.radians(_MAX_SKEW_DEG))
    for i in range(len(b)):
        dx, dy = cx - cx[i], cy - cy[i]
        ok = (dx > 0) & (dx < _SKEW_REACH * max(h[i], np.median(h))) & (np.abs(dy) < limit * dx)
        ok &= np.abs(dy) < 0.6 * np.maximum(h, h[i])
        if ok.any():
            j = np.flatnonzero(ok)[np.argmin(dx[ok])]
            angles.append(math.atan2(dy[j], dx[j]))
    return float(np.median(angles)) if angles else 0.0


def _deskewed(b: np.ndarray, angle: float) -> np.ndarray:
    """Boxes as (u, v_top, v_bottom, h): u along the text line, v across it."""
    c, s = math.cos(angle), math.sin(angle)
    cx, cy = b[:, 0] + b[:, 2] / 2, b[:, 1] + b[:, 3] / 2
    u = cx * c + cy * s
    v = -cx * s + cy * c
    return np.stack([u, v - b[:, 3] / 2, v + b[:, 3] / 2, b[:, 3]], axis=1)


def group_lines(boxes: Sequence[Box]) -> list[list[int]]:
    """Indices of the boxes per line, lines top to bottom, boxes left to right."""
    b = _as_array(boxes)
    if len(b) == 0:
        return []
    d = _deskewed(b, estimate_skew(b))
    u, top, bottom, h = d[:, 0], d[:, 1], d[:, 2], d[:, 3]
    centre = (top + bottom) / 2
    small = h < 0.5 * float(np.median(h))
    lines: list[list[int]] = []
    # Tallest first: full-height digits define lines before small fragments are placed.
    for i in sorted(range(len(b)), key=lambda k: (-h[k], centre[k])):
        best, best_score = -1, -np.inf
        for li, members in enumerate(lines):
            m = np.asarray(members)
            near = m[np.argsort(np.abs(u[m] - u[i]))[:3]]  # neighbours along the line
            ref_top, ref_bottom = float(np.median(top[near])), float(np.median(bottom[near]))
            overlap = min(bottom[i], ref_bottom) - max(top[i], ref_top)
            if overlap >= 0.5 * min(h[i], ref_bottom - ref_top):
                score = overlap / min(h[i], ref_bottom - ref_top)
            elif small[i] and overlap > -0.3 * (ref_bottom - ref_top):
                # A fragment (a 5's bar, a dot) just outside the line still belongs to it.
                score = overlap / (ref_bottom - ref_top) - 1.0
            else:
                continue
            if score > best_score:
                best, best_score = li, score
        if best >= 0:
            lines[best].append(i)
        else:
            lines.append([i])
    lines.sort(key=lambda m: float(np.median(centre[m])))
    return [sorted(m, key=lambda k: u[k]) for m in lines]


def group_numbers(boxes_of_one_line: Sequence[Box]) -> list[list[int]]:
    """Split one line into numbers at gaps clearly wider than the line's digit spacing.

    A gap counts as a space when it is wider than 0.6 digit heights and also wider than
    twice the line's typical gap (capped at 1.2 heights, so evenly but widely spaced
    digits stay together while an obvious space still splits)."""
    b = _as_array(boxes_of_one_line)
    if len(b) == 0:
        return []
    order = [int(k) for k in np.argsort(b[:, 0] + b[:, 2] / 2, kind="stable")]
    if len(order) == 1:
        return [order]
    b = b[order]
    height = float(np.median(b[:, 3]))
    # Narrow digits (a "1") leave wide box gaps; measure gaps against a typical width.
    wide = b[:, 2][b[:, 2] > 0.4 * b[:, 3]]
    width = float(np.median(wide)) if wide.size else 0.6 * height
    cx = b[:, 0] + b[:, 2] / 2
    edge_gap = b[1:, 0] - (b[:-1, 0] + b[:-1, 2])
    gaps = np.minimum(edge_gap, np.diff(cx) - width)
    threshold = max(0.6 * height, min(2.0 * float(np.median(gaps)), 1.2 * height))
    numbers, current = [], [order[0]]
    for k, gap in enumerate(gaps):
        if gap > threshold:
            numbers.append(current)
            current = []
        current.append(order[k + 1])
    numbers.append(current)
    return numbers
