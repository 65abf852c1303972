"""Synthetic "photographed" pages of handwritten digits with exact ground truth.

Real MNIST digits are composed into lines of numbers on a flat page (paper, ruling, ink), the
page is warped as a hand-held camera would see it, then lit, shadowed, blurred, noised and
JPEG-compressed. Every digit's truth box is the bounding box of its visible ink *after* the
warp, so a good extractor's boxes overlap it tightly (IoU on small boxes is unforgiving).

The generator exists to measure the OpenCV extraction pipeline (``scripts/measure_extraction.py``)
and to produce the demo's sample photo, regenerated (bit for bit, given the MNIST test set) with::

    python -m digits_jax.synthetic_pages --out digits_jax/assets/sample_page.jpg --seed 7
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from scipy import ndimage

from digits_jax.errors import DigitsJaxError

# A pixel of an MNIST digit counts as ink above this value (uint8); the truth box is taken where
# the rendered ink coverage is at least INK_COVERAGE, i.e. where an anti-aliased edge is half ink.
MNIST_INK_LEVEL = 40
INK_COVERAGE = 0.5

PAPERS = ("plain", "ruled", "squared")
INKS = ("blue", "black", "grey")

# Base ink colours (BGR); each page jitters them a little.
_INK_BGR = {
    "blue": (150.0, 55.0, 25.0),
    "black": (32.0, 30.0, 30.0),
    "grey": (75.0, 72.0, 70.0),
}
# Paper tints (BGR): white, cream, greyish, slightly blue recycled paper.
_PAPER_BGR = (
    (246.0, 248.0, 250.0),
    (214.0, 236.0, 246.0),
    (228.0, 230.0, 231.0),
    (226.0, 240.0, 244.0),
)


@dataclass
class TruthDigit:
    """One ground-truth digit: its MNIST label and the page-pixel box of its visible ink."""

    label: int
    box: tuple[int, int, int, int]  # x, y, w, h
    # True when this digit's ink was deliberately made to touch the next digit on its line.
    touches_next: bool = False


@dataclass
class Page:
    """A generated photo (uint8 BGR) and its digits, line by line in reading order."""

    image: np.ndarray
    lines: list[list[TruthDigit]]
    # The randomised settings that produced the page, for debugging and failure reports.
    params: dict[str, object] = field(default_factory=dict)

    def text(self) -> str:
        """The page's digits as text, one run per line, lines joined by ``|``."""
        return "|".join("".join(str(d.label) for d in line) for line in self.lines)

    def to_json(self) -> dict[str, object]:
        """The ground truth as plain JSON (the sample photo's ``sample_page.json`` format)."""
        return {
            "text": self.text(),
            "lines": [
                [{"label": d.label, "box": [int(v) for v in d.box]} for d in line]
                for line in self.lines
            ],
        }


@dataclass(frozen=True)
class PageOptions:
    """Overrides for ``generate_page``; ``None`` means "randomise, scaled by difficulty".

    Boolean effects can be forced on or off, which is how the tests isolate one effect.
    """

    size: tuple[int, int] | None = None  # (width, height) in pixels
    n_lines: int | None = None
    digits_per_line: tuple[int, int] = (3, 12)
    digit_height: tuple[int, int] = (30, 90)  # ink height range in pixels (before warping)
    paper: str | None = None  # "plain", "ruled" or "squared"
    ink: str | None = None  # "blue", "black" or "grey"
    texture: bool | None = None
    lighting: bool | None = None
    shadow: bool | None = None
    rotation: bool | None = None
    perspective: bool | None = None
    blur: bool | None = None
    noise: bool | None = None
    jpeg: bool | None = None
    jpeg_quality: int | None = None
    touching: bool | None = None

    def validate(self) -> None:
        """Reject option values that cannot make a page, with a one-line message."""
        if self.size is not None and (
            len(self.size) != 2 or min(self.size) < 160 or max(self.size) > 8000
        ):
            raise DigitsJaxError(
                f"page size must be (width, height) within 160..8000, got {self.size}"
            )
        if self.n_lines is not None and not 1 <= self.n_lines <= 12:
            raise DigitsJaxError(f"n_lines must be 1..12, got {self.n_lines}")
        lo, hi = self.digits_per_line
        if not 1 <= lo <= hi <= 30:
            raise DigitsJaxError(
                f"digits_per_line must be (lo, hi) with 1 <= lo <= hi <= 30, got {(lo, hi)}"
            )
        lo, hi = self.digit_height
        if not 8 <= lo <= hi:
            raise DigitsJaxError(
                f"digit_height must be (lo, hi) with 8 <= lo <= hi, got {(lo, hi)}"
            )
        if self.paper is not None and self.paper not in PAPERS:
            raise DigitsJaxError(f"paper must be one of {', '.join(PAPERS)}, got {self.paper!r}")
        if self.ink is not None and self.ink not in INKS:
            raise DigitsJaxError(f"ink must be one of {', '.join(INKS)}, got {self.ink!r}")
        if self.jpeg_quality is not None and not 5 <= self.jpeg_quality <= 100:
            raise DigitsJaxError(f"jpeg_quality must be 5..100, got {self.jpeg_quality}")


# --------------------------------------------------------------------------------------------
# Small helpers


def _chance(rng: np.random.Generator, forced: bool | None, p: float) -> bool:
    """An on/off effect: forced by the caller, else on with probability ``p``.

    The draw happens even when forced, so toggling one option keeps the other random choices.
    """
    drawn = bool(rng.random() < p)
    return drawn if forced is None else forced


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cell: float) -> np.ndarray:
    """Zero-mean, unit-ish smooth noise with features about ``cell`` pixels wide (float32)."""
    h, w = shape
    sh, sw = max(2, round(h / cell) + 2), max(2, round(w / cell) + 2)
    small = rng.standard_normal((sh, sw), dtype=np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _as_uint8_digits(digits: np.ndarray) -> np.ndarray:
    """Accept (N, 28, 28[, 1]) uint8 or float-in-[0, 1] MNIST arrays; return (N, 28, 28) uint8."""
    arr = np.asarray(digits)
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 3 or arr.shape[0] == 0:
        raise DigitsJaxError(
            f"digits must be a non-empty (N, H, W) image array, got shape {arr.shape}"
        )
    if arr.dtype != np.uint8:
        arr = arr.astype(np.float32)
        if arr.max(initial=0.0) <= 1.0:
            arr = arr * 255.0
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    return arr


# --------------------------------------------------------------------------------------------
# Digits


@dataclass
class _Glyph:
    """A rendered digit: ink coverage in [0, 1], tightly cropped with a 1-2 px empty border."""

    alpha: np.ndarray  # float32 (h, w)
    label: int
    x: int = 0  # top-left on the flat page
    y: int = 0
    line: int = 0
    touches_next: bool = False


def _ink_bounds(img: np.ndarray) -> tuple[int, int, int, int] | None:
    """(y0, y1, x0, x1) inclusive bounds of the pixels above the MNIST ink level."""
    ys, xs = np.nonzero(img > MNIST_INK_LEVEL)
    if ys.size == 0:
        return None
    return int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max())


def _render_glyph(
    img: np.ndarray, height: int, threshold: float, stroke: int, label: int
) -> _Glyph | None:
    """Upscale one MNIST digit so its ink is ``height`` px tall, smoothly, with pen thickness.

    Cubic upscaling of the grey image followed by a soft threshold gives round, anti-aliased
    strokes instead of 28-px blocks; dilating/eroding the upscaled field varies the pen width.
    """
    bounds = _ink_bounds(img)
    if bounds is None:
        return None
    y0, y1, x0, x1 = bounds
    crop = np.pad(img[y0 : y1 + 1, x0 : x1 + 1], 2).astype(np.float32)
    crop /= crop.max()  # faint scans get the same pen as bold ones
    ink_h, ink_w = y1 - y0 + 1, x1 - x0 + 1
    scale = height / ink_h
    if ink_w * scale > 1.4 * height:  # very wide scribbles: keep them within a sane width
        scale = 1.4 * height / ink_w
    out_w = max(3, round(crop.shape[1] * scale))
    out_h = max(3, round(crop.shape[0] * scale))
    field_ = cv2.resize(crop, (out_w, out_h), interpolation=cv2.INTER_CUBIC)
    field_ = np.pad(field_, abs(stroke) + 2)
    if stroke:
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * abs(stroke) + 1,) * 2)
        thick = cv2.dilate(field_, k) if stroke > 0 else cv2.erode(field_, k)
        # Erosion can erase thin parts of a digit; fall back to the plain pen if too much goes.
        if stroke > 0 or (thick > threshold).sum() > 0.45 * (field_ > threshold).sum():
            field_ = thick
    alpha = np.clip((field_ - threshold) / 0.2 + 0.5, 0.0, 1.0).astype(np.float32)
    # MNIST has stray specks; an extractor rightly ignores them, so they would only make the
    # truth box disagree with it. Drop pieces under 3% of the largest piece of the digit.
    n, parts, stats, _ = cv2.connectedComponentsWithStats(
        (alpha > 0).astype(np.uint8), connectivity=8
    )
    if n > 2:
        areas = stats[1:, cv2.CC_STAT_AREA]
        small = np.flatnonzero(areas < 0.03 * areas.max()) + 1
        alpha[np.isin(parts, small)] = 0.0
    ys, xs = np.nonzero(alpha > 0)
    if ys.size == 0 or (alpha >= INK_COVERAGE).sum() < 6:
        return None
    alpha = alpha[max(0, ys.min() - 1) : ys.max() + 2, max(0, xs.min() - 1) : xs.max() + 2]
    return _Glyph(alpha=np.ascontiguousarray(alpha), label=label)


def _touch_x(left: _Glyph, right: _Glyph, overlap: int) -> int | None:
    """The x for ``right`` at which its ink just meets ``left``'s ink (overlapping by ``overlap``).

    Uses the rows both glyphs share: for each, the left glyph's rightmost ink column and the
    right glyph's leftmost one. ``None`` when they share no inked rows.
    """
    top, bottom = (
        max(left.y, right.y),
        min(left.y + left.alpha.shape[0], right.y + right.alpha.shape[0]),
    )
    if bottom - top < 3:
        return None
    la = left.alpha[top - left.y : bottom - left.y] >= INK_COVERAGE
    ra = right.alpha[top - right.y : bottom - right.y] >= INK_COVERAGE
    rows = la.any(axis=1) & ra.any(axis=1)
    if not rows.any():
        return None
    l_right = la.shape[1] - 1 - np.argmax(la[:, ::-1], axis=1)  # rightmost ink col per row
    r_left = np.argmax(ra, axis=1)  # leftmost ink col per row
    x = int(np.max(left.x + l_right[rows] - r_left[rows])) + 1 - overlap
    return x


# --------------------------------------------------------------------------------------------
# Layout


@dataclass
class _Layout:
    glyphs: list[_Glyph]
    line_count: int
    pitch: float  # line spacing in px
    first_baseline: float
    digit_h: float
    margin_x: int  # left edge of the writing area


def _layout(
    rng: np.random.Generator,
    digits: np.ndarray,
    labels: np.ndarray,
    d: float,
    opts: PageOptions,
    size: tuple[int, int],
    paper: str,
) -> _Layout:
    """Choose lines, numbers and digits, and place rendered glyphs on the flat page."""
    w_page, h_page = size
    n_lines = opts.n_lines if opts.n_lines is not None else int(rng.integers(1, 7))
    lo, hi = opts.digits_per_line
    counts = [int(rng.integers(lo, hi + 1)) for _ in range(n_lines)]

    # Pick MNIST samples with ink; their ink aspect ratios let us size the lines before rendering.
    chosen: list[list[int]] = []
    for n in counts:
        row: list[int] = []
        while len(row) < n:
            idx = int(rng.integers(0, len(digits)))
            if _ink_bounds(digits[idx]) is not None:
                row.append(idx)
        chosen.append(row)

    def aspect(idx: int) -> float:
        y0, y1, x0, x1 = _ink_bounds(digits[idx])  # type: ignore[misc]
        return min(1.4, (x1 - x0 + 1) / (y1 - y0 + 1))

    # Gaps in units of digit height: inside a number, and between numbers (larger).
    gap_in = float(rng.uniform(0.18, 0.4))
    gap_out = float(rng.uniform(0.8, 1.6))
    size_jitter = 0.04 + 0.1 * d
    touching_on = _chance(rng, opts.touching, 0.25 + 0.6 * d)
    p_touch = (0.06 + 0.2 * d) if touching_on else 0.0

    groups: list[list[int]] = []  # per line: group id per digit
    line_units: list[float] = []
    for row in chosen:
        gid, left_in_group, ids = 0, 0, []
        for _ in row:
            if left_in_group == 0:
                left_in_group = int(rng.integers(1, 6))
                gid += 1
            ids.append(gid)
            left_in_group -= 1
        groups.append(ids)
        units = sum(aspect(i) * (1 + size_jitter) for i in row)
        # Upper bound of the gaps drawn below, so that lines never run off the page.
        units += sum(
            max(1.25 * (gap_in if a == b else gap_out), 0.25) for a, b in itertools.pairwise(ids)
        )
        line_units.append(units)

    if paper == "ruled":
        pitch_units = float(rng.uniform(1.55, 2.1))
    else:
        pitch_units = float(rng.uniform(1.7, 2.5))
    margin_x = round(w_page * rng.uniform(0.08, 0.13))
    margin_y = round(h_page * rng.uniform(0.08, 0.13))
    avail_w, avail_h = w_page - 2 * margin_x, h_page - 2 * margin_y
    h_lo, h_hi = opts.digit_height
    h = float(rng.uniform(h_lo, h_hi))
    h = min(h, 0.95 * avail_w / max(line_units), avail_h / ((n_lines - 0.2) * pitch_units + 0.3))
    if h < 10:
        raise DigitsJaxError(
            f"page {w_page}x{h_page} is too small for {n_lines} lines of up to {max(counts)} digits"
        )
    pitch = pitch_units * h
    block_h = (n_lines - 1) * pitch + 1.2 * h
    # People start writing near the top more often than near the bottom.
    first_baseline = margin_y + 1.1 * h + float(rng.beta(1.2, 2.2)) * max(0.0, avail_h - block_h)

    threshold = float(rng.uniform(0.3, 0.55))
    pen = float(rng.uniform(-0.045, 0.035))  # stroke radius as a fraction of digit height
    drift_max = 0.12 * h * d  # vertical drift of a line's end relative to its start
    jitter_y = 0.06 * h * d

    glyphs: list[_Glyph] = []
    for li, (row, ids) in enumerate(zip(chosen, groups, strict=True)):
        baseline = first_baseline + li * pitch
        line_len = line_units[li] * h
        slack = max(0.0, avail_w - line_len)
        x = margin_x + float(rng.uniform(0, 0.5 * slack))
        x_start = x
        drift = float(rng.uniform(-drift_max, drift_max))
        line_glyphs: list[_Glyph] = []
        for k, idx in enumerate(row):
            gh = round(h * float(rng.uniform(1 - size_jitter, 1 + size_jitter)))
            g = None
            for stroke in (round(pen * gh), 0):
                g = _render_glyph(digits[idx], gh, threshold, stroke, int(labels[idx]))
                if g is not None:
                    break
            if g is None:  # only for near-blank inputs: skip the digit
                continue
            g.line = li
            bottom = baseline + drift * (x - x_start) / max(line_len, 1.0)
            bottom += float(rng.uniform(-jitter_y, jitter_y))
            g.y = round(bottom - g.alpha.shape[0])
            g.x = round(x)
            if line_glyphs:
                prev = line_glyphs[-1]
                same_group = ids[k] == ids[k - 1]
                gap = (gap_in if same_group else gap_out) * h * float(rng.uniform(0.8, 1.25))
                gap = max(gap, 0.15 * h + 3)
                g.x = prev.x + prev.alpha.shape[1] + round(gap)
                if same_group and rng.random() < p_touch:
                    tx = _touch_x(prev, g, overlap=int(rng.integers(1, 4)))
                    # Touch, but don't nest: boxes may overlap by at most a third of a width,
                    # as when two people's quick "1" and "0" run into each other.
                    pw = prev.alpha.shape[1]
                    max_overlap = min(pw, g.alpha.shape[1]) / 3 + 2
                    if tx is not None and prev.x + pw - tx <= max_overlap:
                        g.x = min(g.x, tx)
                        prev.touches_next = True
            line_glyphs.append(g)
            x = g.x + g.alpha.shape[1]
        if not line_glyphs:
            continue
        # Slide a line that came out longer than estimated back inside the writing area.
        overflow = line_glyphs[-1].x + line_glyphs[-1].alpha.shape[1] - (w_page - margin_x // 2)
        if overflow > 0:
            shift = min(overflow, line_glyphs[0].x - margin_x // 2)
            for g in line_glyphs:
                g.x -= shift
        glyphs.extend(line_glyphs)
    return _Layout(glyphs, n_lines, pitch, first_baseline, h, margin_x)


# --------------------------------------------------------------------------------------------
# Flat page: paper, ruling, ink


def _paper(rng: np.random.Generator, size: tuple[int, int], texture: bool) -> np.ndarray:
    """Paper colour with fibre-like mottling (float32 BGR, 0-255)."""
    w, h = size
    base = np.array(_PAPER_BGR[int(rng.integers(0, len(_PAPER_BGR)))], np.float32)
    base += rng.uniform(-6, 4, 3).astype(np.float32)
    page = np.empty((h, w, 3), np.float32)
    page[:] = base
    if texture:
        mottle = _smooth_noise(rng, (h, w), 60.0) * float(rng.uniform(1.0, 3.0))
        grain = _smooth_noise(rng, (h, w), 3.0) * float(rng.uniform(0.8, 2.5))
        page += (mottle + grain)[..., None]
    return page


def _rule(rng: np.random.Generator, page: np.ndarray, paper: str, layout: _Layout) -> np.ndarray:
    """Draw ruled lines (digits sit on them) or a squared grid onto the flat page."""
    if paper == "plain":
        return page
    h, w = page.shape[:2]
    lines = np.zeros((h, w), np.uint8)
    thick = 1 if w < 1400 or rng.random() < 0.5 else 2
    if paper == "ruled":
        pitch = layout.pitch
        y = layout.first_baseline + pitch * math.ceil(-layout.first_baseline / pitch)
        while y < h:
            yy = round(y + 2)  # the line runs just under the digits' baseline
            cv2.line(lines, (0, yy), (w - 1, yy), 255, thick, cv2.LINE_AA)
            y += pitch
        colour = np.array([215, 160, 120], np.float32)  # light blue
    else:
        cell = float(rng.uniform(0.45, 0.75)) * layout.digit_h
        cell = max(cell, 14.0)
        off_x, off_y = rng.uniform(0, cell, 2)
        for x in np.arange(off_x, w, cell):
            cv2.line(lines, (round(x), 0), (round(x), h - 1), 255, thick, cv2.LINE_AA)
        for y in np.arange(off_y, h, cell):
            cv2.line(lines, (0, round(y)), (w - 1, round(y)), 255, thick, cv2.LINE_AA)
        colour = (
            np.array([200, 175, 150], np.float32)
            if rng.random() < 0.6
            else np.array([170, 170, 170], np.float32)
        )
    strength = float(rng.uniform(0.35, 0.7))
    _blend_sparse(page, lines, colour, strength)
    if paper == "ruled" and rng.random() < 0.5:  # red margin line left of the writing
        x = round(layout.margin_x * float(rng.uniform(0.45, 0.8)))
        lines[:] = 0
        cv2.line(lines, (x, 0), (x, h - 1), 255, thick + 1, cv2.LINE_AA)
        _blend_sparse(page, lines, np.array([120, 110, 225], np.float32), strength)
    return page


def _blend_sparse(page: np.ndarray, mask: np.ndarray, colour: np.ndarray, strength: float) -> None:
    """Paint ``colour`` over ``page`` in place where the uint8 ``mask`` is set (thin lines)."""
    ys, xs = np.nonzero(mask)
    a = (mask[ys, xs].astype(np.float32) * (strength / 255.0))[:, None]
    page[ys, xs] = page[ys, xs] * (1 - a) + colour * a


def _ink(
    rng: np.random.Generator, page: np.ndarray, glyphs: Sequence[_Glyph], ink: str
) -> tuple[np.ndarray, np.ndarray]:
    """Lay the glyphs' ink on the page; also return a label map (glyph index + 1 where inked)."""
    h, w = page.shape[:2]
    cover = np.zeros((h, w), np.float32)
    owner = np.zeros((h, w), np.float32)  # float so warpPerspective handles it; ints 0..N
    for i, g in enumerate(glyphs):
        gh, gw = g.alpha.shape
        x0, y0 = max(g.x, 0), max(g.y, 0)
        x1, y1 = min(g.x + gw, w), min(g.y + gh, h)
        if x1 <= x0 or y1 <= y0:
            continue
        a = g.alpha[y0 - g.y : y1 - g.y, x0 - g.x : x1 - g.x]
        c = cover[y0:y1, x0:x1]
        mine = (a >= INK_COVERAGE) & (a >= c)
        owner[y0:y1, x0:x1][mine] = i + 1
        np.maximum(c, a, out=c)
    colour = np.array(_INK_BGR[ink], np.float32) + rng.uniform(-12, 12, 3).astype(np.float32)
    base_opacity = float(rng.uniform(0.85, 0.97))
    ys, xs = np.nonzero(cover.any(axis=1))[0], np.nonzero(cover.any(axis=0))[0]
    if ys.size:  # blend only the block that holds writing
        roi = (slice(ys[0], ys[-1] + 1), slice(xs[0], xs[-1] + 1))
        c = cover[roi]
        # Pen pressure: ink is a little lighter in places, never washed out.
        opacity = base_opacity - 0.06 * np.abs(_smooth_noise(rng, c.shape, 40.0))
        a = (c * np.clip(opacity, 0.7, 1.0))[..., None]
        page[roi] = page[roi] * (1 - a) + colour * a
    return page, owner


# --------------------------------------------------------------------------------------------
# Camera: warp, light, shadow, blur, noise, JPEG


def _homography(
    rng: np.random.Generator,
    size: tuple[int, int],
    d: float,
    rotation: bool,
    perspective: bool,
    ink_boxes: np.ndarray,
) -> np.ndarray | None:
    """A small rotation plus corner jitter, shrunk about the centre until all ink stays in frame."""
    if not (rotation or perspective):
        return None
    w, h = size
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    dst = src.copy()
    if perspective:
        j = (0.01 + 0.06 * d) * np.array([w, h], np.float32)
        dst += rng.uniform(-1, 1, (4, 2)).astype(np.float32) * j
    if rotation:
        angle = math.radians(float(rng.uniform(-1, 1)) * (0.5 + 3.5 * d))
        c = np.array([w / 2, h / 2], np.float32)
        rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        dst = ((dst - c) @ rot.T + c).astype(np.float32)
    m = cv2.getPerspectiveTransform(src, dst)
    # Keep every digit's ink at least 2% of the frame away from the edges.
    corners = np.concatenate(
        [
            ink_boxes[:, [0, 1]],
            ink_boxes[:, [2, 1]],
            ink_boxes[:, [2, 3]],
            ink_boxes[:, [0, 3]],
        ]
    ).astype(np.float32)
    for _ in range(20):
        pts = cv2.perspectiveTransform(corners[None], m)[0]
        mx, my = 0.02 * w, 0.02 * h
        if (
            pts[:, 0].min() >= mx
            and pts[:, 0].max() <= w - mx
            and pts[:, 1].min() >= my
            and pts[:, 1].max() <= h - my
        ):
            break
        shrink = np.array([[0.96, 0, 0.02 * w], [0, 0.96, 0.02 * h], [0, 0, 1]])
        m = shrink @ m
    return m


_LOW = 4  # light and shadow fields are smooth: compute them at 1/4 resolution


def _desk(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """A table surface for the parts of the frame the page does not cover (full-res BGR)."""
    w, h = size
    tones = ((55, 85, 125), (70, 70, 72), (40, 40, 45), (120, 150, 175), (95, 110, 100))
    base = np.array(tones[int(rng.integers(0, len(tones)))], np.float32)
    sw, sh = max(8, w // _LOW), max(8, h // _LOW)
    tex = _smooth_noise(rng, (sh, sw), 20.0) * 10 + rng.standard_normal((sh, sw), np.float32) * 3
    return cv2.resize(base + tex[..., None], (w, h), interpolation=cv2.INTER_LINEAR)


def _lighting(rng: np.random.Generator, shape: tuple[int, int], d: float) -> np.ndarray:
    """Uneven light: a linear gradient, a vignette and a slight colour cast (low-res, 3 ch)."""
    sh, sw = shape
    yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float32)
    xx, yy = xx / (sw - 1) - 0.5, yy / (sh - 1) - 0.5
    theta = float(rng.uniform(0, 2 * math.pi))
    ramp = xx * math.cos(theta) + yy * math.sin(theta)  # about -0.7..0.7
    grad = float(rng.uniform(0.05, 0.12 + 0.35 * d))
    cx, cy = rng.uniform(-0.25, 0.25, 2)
    r2 = ((xx - cx) ** 2 + (yy - cy) ** 2) * 2
    vign = float(rng.uniform(0.0, 0.1 + 0.3 * d))
    light = (1 - grad * (ramp + 0.7)) * (1 - vign * r2)
    light *= float(rng.uniform(0.9 - 0.15 * d, 1.05))  # exposure
    # Colour cast: mostly warm (indoor bulbs), sometimes cool (daylight, shade).
    warmth = float(rng.uniform(-0.4, 1.0)) * (0.03 + 0.05 * d)
    cast = np.array([1 - warmth, 1.0, 1 + 0.6 * warmth], np.float32)
    return (light[..., None] * cast).astype(np.float32)


def _shadow(rng: np.random.Generator, shape: tuple[int, int], d: float) -> np.ndarray:
    """A soft-edged cast shadow (a phone or hand) entering from one side (low-res, 3 ch)."""
    sh, sw = shape
    side = int(rng.integers(0, 4))
    t = np.sort(rng.uniform(0, 1, 2))
    depth = float(rng.uniform(0.15, 0.55))
    inner = np.sort(rng.uniform(0, 1, int(rng.integers(1, 4))))[::-1]
    # Polygon in (along-edge, into-page) coordinates, then mapped onto the chosen side.
    poly = [(t[0], -0.05), (t[1], -0.05)]
    for a in inner * (t[1] - t[0] + 0.3) + t[0] - 0.15:
        poly.append((float(a), depth * float(rng.uniform(0.6, 1.0))))
    pts = []
    for a, b in poly:
        x, y = ((a, b), (1 - b, a), (a, 1 - b), (b, a))[side]
        pts.append((round(x * sw), round(y * sh)))
    mask = np.zeros((sh, sw), np.float32)
    cv2.fillPoly(mask, [np.array(pts, np.int32)], 1.0, cv2.LINE_AA)
    soft = float(rng.uniform(0.008, 0.04)) * max(sh, sw)  # penumbra width
    mask = cv2.GaussianBlur(mask, (0, 0), soft)
    strength = float(rng.uniform(0.2, 0.3 + 0.25 * d))
    tint = np.array([0.85, 1.0, 1.1], np.float32)  # shade is bluer: red drops the most
    return (1 - strength * mask[..., None] * tint).astype(np.float32)


def generate_page(
    rng: np.random.Generator,
    digits: np.ndarray,
    labels: np.ndarray,
    difficulty: float = 0.5,
    **options: object,
) -> Page:
    """Compose ``digits`` (MNIST, white ink on black) into a page that looks photographed.

    ``difficulty`` in [0, 1] scales every random effect; keyword ``options`` are the fields of
    ``PageOptions`` (e.g. ``paper="ruled"``, ``shadow=False``, ``size=(800, 600)``). The same
    ``rng`` state always gives the same page.
    """
    try:
        opts = PageOptions(**options)  # type: ignore[arg-type]
    except TypeError as exc:
        valid = ", ".join(f.name for f in dataclasses.fields(PageOptions))
        raise DigitsJaxError(f"unknown page option ({exc}); valid options: {valid}") from exc
    opts.validate()
    if not 0.0 <= difficulty <= 1.0:
        raise DigitsJaxError(f"difficulty must be in [0, 1], got {difficulty}")
    digits = _as_uint8_digits(digits)
    labels = np.asarray(labels)
    if labels.shape[0] != digits.shape[0]:
        raise DigitsJaxError(f"{digits.shape[0]} digits but {labels.shape[0]} labels")
    if not (digits > MNIST_INK_LEVEL).any():
        raise DigitsJaxError("digits contain no ink (expected white digits on black)")
    d = float(difficulty)

    # Decide everything up front, in a fixed order, so a seed always means the same page; the
    # draws happen even for options the caller fixed, so fixing one leaves the others alone.
    long_side = int(rng.integers(1280, 1761))
    short_side = round(long_side * float(rng.uniform(0.7, 0.78)))
    size = (long_side, short_side) if rng.random() < 0.75 else (short_side, long_side)
    if opts.size is not None:
        size = (int(opts.size[0]), int(opts.size[1]))
    w, h = size
    paper = str(rng.choice(PAPERS, p=[0.5 - 0.1 * d, 0.3, 0.2 + 0.1 * d]))
    paper = opts.paper or paper
    ink = str(rng.choice(INKS, p=[0.45, 0.4, 0.15]))
    ink = opts.ink or ink
    texture = _chance(rng, opts.texture, 0.85)
    lighting = _chance(rng, opts.lighting, 0.8 + 0.2 * d)
    shadow = _chance(rng, opts.shadow, 0.1 + 0.6 * d)
    rotation = _chance(rng, opts.rotation, 0.6 + 0.4 * d)
    perspective = _chance(rng, opts.perspective, 0.4 + 0.6 * d)
    blur = _chance(rng, opts.blur, 0.5 + 0.5 * d)
    noise = _chance(rng, opts.noise, 0.8 + 0.2 * d)
    jpeg = _chance(rng, opts.jpeg, 0.9)
    quality = int(rng.integers(round(90 - 50 * d), round(97 - 20 * d) + 1))
    if opts.jpeg_quality is not None:
        quality = opts.jpeg_quality

    layout = _layout(rng, digits, labels, d, opts, size, paper)
    flat = _paper(rng, size, texture)
    flat = _rule(rng, flat, paper, layout)
    flat, owner = _ink(rng, flat, layout.glyphs, ink)

    boxes = np.array(
        [[g.x, g.y, g.x + g.alpha.shape[1], g.y + g.alpha.shape[0]] for g in layout.glyphs],
        np.float32,
    )
    m = _homography(rng, size, d, rotation, perspective, boxes)
    if m is not None:
        # Warp the page onto a desk: outside the page, the desk stays (BORDER_TRANSPARENT).
        img = _desk(rng, size)
        cv2.warpPerspective(
            flat, m, size, dst=img, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_TRANSPARENT
        )
        owner = cv2.warpPerspective(owner, m, size, flags=cv2.INTER_NEAREST, borderValue=0)
    else:
        img = flat

    low = (max(8, h // _LOW), max(8, w // _LOW))
    light = _lighting(rng, low, d) if lighting else np.ones((*low, 3), np.float32)
    if shadow:
        light *= _shadow(rng, low, d)
    if lighting or shadow:
        cv2.multiply(img, cv2.resize(light, size, interpolation=cv2.INTER_LINEAR), dst=img)
    if blur:
        sigma = float(rng.uniform(0.3, 0.6 + 1.2 * d))
        cv2.GaussianBlur(img, (0, 0), sigma, dst=img)
    if noise:
        # Sensor noise: read noise plus shot noise growing with brightness; luminance noise
        # per pixel, chroma noise coarser (demosaicing smears it over neighbours).
        read = float(rng.uniform(0.8, 1.5 + 4.0 * d))
        shot = float(rng.uniform(0.0, 0.03 + 0.15 * d))
        grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        sigma_px = np.sqrt(read**2 + shot * np.maximum(grey, 0))
        lum = rng.standard_normal((h, w), dtype=np.float32)
        lum *= sigma_px
        chroma = rng.standard_normal(((h + 1) // 2, (w + 1) // 2, 3), dtype=np.float32)
        chroma = cv2.resize(chroma, size, interpolation=cv2.INTER_LINEAR)
        chroma *= (0.8 * sigma_px)[..., None]
        img += lum[..., None]
        img += chroma
    np.clip(img, 0, 255, out=img)
    out = cv2.convertScaleAbs(img)  # rounds and saturates to uint8
    if jpeg:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        out = cv2.imdecode(buf, cv2.IMREAD_COLOR)

    # Truth boxes: bounding box of each glyph's (warped) ink mask.
    slices = ndimage.find_objects(owner.astype(np.int32), max_label=len(layout.glyphs))
    lines: list[list[TruthDigit]] = [[] for _ in range(layout.line_count)]
    for g, sl in zip(layout.glyphs, slices, strict=True):
        if sl is None:
            raise RuntimeError("a digit's ink vanished during rendering")  # layout bug
        ys, xs = sl
        box = (int(xs.start), int(ys.start), int(xs.stop - xs.start), int(ys.stop - ys.start))
        lines[g.line].append(TruthDigit(g.label, box, g.touches_next))
    lines = [line for line in lines if line]
    params: dict[str, object] = {
        "difficulty": d,
        "size": size,
        "paper": paper,
        "ink": ink,
        "texture": texture,
        "lighting": lighting,
        "shadow": shadow,
        "rotation": rotation,
        "perspective": perspective,
        "blur": blur,
        "noise": noise,
        "jpeg_quality": quality if jpeg else None,
        "digit_height": round(layout.digit_h, 1),
    }
    return Page(image=out, lines=lines, params=params)


# --------------------------------------------------------------------------------------------
# Stand-in digits and the sample-photo command


def stand_in_digits(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Random stroke "digits" (uint8 (n, 28, 28), white on black) with random labels.

    For tests and development without the MNIST download: they look like scribbles, but they
    have the same format, size and stroke width as MNIST, which is all the generator needs.
    """
    imgs = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):
        pts = rng.uniform([6, 4], [22, 24], (int(rng.integers(3, 7)), 2))
        pts[0, 1], pts[-1, 1] = 4 + rng.uniform(0, 2), 24 - rng.uniform(0, 2)  # full height
        cv2.polylines(imgs[i], [np.round(pts).astype(np.int32)], False, 255, 2, cv2.LINE_AA)
        imgs[i] = cv2.GaussianBlur(imgs[i], (3, 3), 0.6)
    return imgs, rng.integers(0, 10, n)


def save_page(page: Page, path: str | Path, quality: int = 85) -> tuple[Path, Path]:
    """Write the page as JPEG and its ground truth as JSON next to it (same stem)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".jpg", page.image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise DigitsJaxError(f"could not encode {path}")
    path.write_bytes(buf.tobytes())
    truth = path.with_suffix(".json")
    data = page.to_json()
    # One text line per page line: small, readable diffs when the sample is regenerated.
    rows = ",\n".join("  " + json.dumps(line) for line in data["lines"])  # type: ignore[union-attr]
    truth.write_text(f'{{\n "text": {json.dumps(data["text"])},\n "lines": [\n{rows}\n ]\n}}\n')
    return path, truth


def load_mnist_test() -> tuple[np.ndarray, np.ndarray]:
    """MNIST test digits via ``digits_jax.data.load_split``, as (N, 28, 28) uint8 and labels."""
    try:
        from digits_jax.data import load_split
    except ImportError as exc:
        raise DigitsJaxError(
            f"cannot load MNIST ({exc}); use --stand-in-digits for scribble digits"
        ) from exc
    images, labels = load_split("test")
    return _as_uint8_digits(np.asarray(images)), np.asarray(labels).astype(np.int64)


def main(argv: Sequence[str] | None = None) -> int:
    """Generate one page (the demo's sample photo by default settings) and its JSON truth."""
    ap = argparse.ArgumentParser(
        prog="python -m digits_jax.synthetic_pages",
        description="Write a synthetic photographed page of MNIST digits plus its truth JSON.",
    )
    ap.add_argument(
        "--out", required=True, help="output .jpg path; truth goes to the .json beside it"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--difficulty", type=float, default=0.4)
    ap.add_argument("--lines", type=int, default=3)
    ap.add_argument("--digits-per-line", type=int, nargs=2, default=(5, 9), metavar=("LO", "HI"))
    ap.add_argument("--size", type=int, nargs=2, default=(1600, 1200), metavar=("W", "H"))
    ap.add_argument("--quality", type=int, default=85, help="JPEG quality of the saved file")
    ap.add_argument("--stand-in-digits", action="store_true", help="scribbles instead of MNIST")
    args = ap.parse_args(argv)
    try:
        if args.stand_in_digits:
            digits, labels = stand_in_digits(np.random.default_rng(12345), 2000)
        else:
            digits, labels = load_mnist_test()
        page = generate_page(
            np.random.default_rng(args.seed),
            digits,
            labels,
            args.difficulty,
            size=tuple(args.size),
            n_lines=args.lines,
            digits_per_line=tuple(args.digits_per_line),
            jpeg=False,  # the file itself is the (single) JPEG compression
        )
        jpg, truth = save_page(page, args.out, args.quality)
    except DigitsJaxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"{jpg} ({jpg.stat().st_size // 1024} KB), {truth}: {page.text()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
