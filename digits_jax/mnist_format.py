"""Bring a digit crop into MNIST's format so the MNIST-trained classifier sees familiar input.

LeCun et al. size-normalised each digit to fit a 20x20 box (keeping the aspect ratio,
anti-aliased) and centred it by its centre of mass in a 28x28 field. The classifier has
also only ever seen MNIST's stroke width (about 2.3 px at half intensity), so strokes
from thin ballpoints or thick markers are brought near that width first.
"""

from __future__ import annotations

import cv2
import numpy as np

MNIST_SIDE = 28
BOX_SIDE = 20
# Measured on MNIST's training digits (threshold 0.5): median stroke width 2.3 px,
# 10th-90th percentile 1.7-3.4 px. Strokes outside the band are moved to the target.
TARGET_STROKE = 2.4
MIN_STROKE = 1.8
MAX_STROKE = 3.2
# Work at 4x the final box so width changes of a fraction of an output pixel are possible.
_WORK_SIDE = 4 * BOX_SIDE
# MNIST's digits have their centre of mass at (14.0, 14.0) in pixel-index coordinates.
_CENTRE = 14.0


def _as_unit_float(img: np.ndarray) -> np.ndarray:
    """Scale any numeric image into float32 [0, 1] without inventing contrast."""
    arr = np.asarray(img)
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if arr.dtype == np.bool_:
        return arr.astype(np.float32)
    out = np.nan_to_num(arr.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    peak = float(out.max()) if out.size else 0.0
    if np.issubdtype(arr.dtype, np.integer) and peak > 1.0:
        out /= float(np.iinfo(arr.dtype).max) if peak > 255 else 255.0
    elif peak > 1.0:
        out /= peak
    return np.clip(out, 0.0, 1.0)


def _ink_bbox(ink: np.ndarray, level: float = 0.0) -> tuple[int, int, int, int] | None:
    """(y0, y1, x0, x1) half-open box around pixels above ``level``, or None if empty."""
    rows = np.flatnonzero((ink > level).any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero((ink > level).any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def stroke_width(mask: np.ndarray) -> float:
    """Mean stroke width of a binary mask: a ribbon of length L and width w has area L*w
    and outline 2L, so w = 2 * area / outline. Needs no skeleton and is cheap."""
    m = (mask > 0).astype(np.uint8)
    area = float(m.sum())
    if area == 0:
        return 0.0
    contours, _ = cv2.findContours(m, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    outline = sum(cv2.arcLength(c, True) for c in contours)
    return 2.0 * area / max(outline, 1.0)


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def _n_parts(mask: np.ndarray) -> int:
    return cv2.connectedComponents((mask > 0).astype(np.uint8), connectivity=8)[0] - 1


def _normalise_stroke(work: np.ndarray) -> np.ndarray:
    """Thicken thin or thin thick strokes of a digit whose longer side is _WORK_SIDE px."""
    factor = _WORK_SIDE / BOX_SIDE
    mask = work > 0.5
    width = stroke_width(mask) / factor  # in final (28x28) pixels
    if width <= 0:
        return work
    if width < MIN_STROKE:
        radius = round((TARGET_STROKE - width) * factor / 2)
        if radius > 0:
            return cv2.dilate(work, _disk(radius))
    elif width > MAX_STROKE:
        radius = round((width - TARGET_STROKE) * factor / 2)
        parts = _n_parts(mask)
        # Erosion must not break a stroke or erase a thin part (a 1's serif, a 7's bar).
        while radius > 0:
            thinned = cv2.erode(work, _disk(radius))
            kept = thinned > 0.5
            if _n_parts(kept) <= parts and kept.sum() > 0.3 * mask.sum():
                return thinned
            radius -= 1
    return work


def _resize(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """Area averaging when shrinking (anti-aliased), linear when enlarging."""
    shrinking = width <= img.shape[1] and height <= img.shape[0]
    interp = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(img, (width, height), interpolation=interp)


def _fit(ink: np.ndarray, side: int) -> np.ndarray:
    """Resize so the longer side is ``side`` px, keeping the aspect ratio."""
    h, w = ink.shape
    s = side / max(h, w)
    return _resize(ink, max(1, round(w * s)), max(1, round(h * s)))


def to_mnist(ink: np.ndarray) -> np.ndarray:
    """Any-size crop, ink > 0 on a 0 background -> float32 (28, 28) in [0, 1] like MNIST.

    Crop to the ink, normalise stroke width, fit the longer side to 20 px (anti-aliased)
    and translate so the centre of mass sits at the centre of the 28x28 field.
    """
    img = _as_unit_float(ink)
    if img.ndim == 3:
        img = img.max(axis=2)
    out = np.zeros((MNIST_SIDE, MNIST_SIDE), np.float32)
    box = _ink_bbox(img)
    if box is None:
        return out
    y0, y1, x0, x1 = box
    crop = img[y0:y1, x0:x1]
    crop = crop / float(crop.max())

    work = _fit(crop, _WORK_SIDE)
    work = np.pad(work, _WORK_SIDE // 4)  # room for thickening
    work = _normalise_stroke(work)
    box = _ink_bbox(work, 0.02)
    if box is None:
        return out
    y0, y1, x0, x1 = box
    digit = _fit(work[y0:y1, x0:x1], BOX_SIDE)
    peak = float(digit.max())
    if peak <= 0:
        return out
    digit = np.clip(digit / peak, 0.0, 1.0)

    h, w = digit.shape
    top, left = (MNIST_SIDE - h) // 2, (MNIST_SIDE - w) // 2
    out[top : top + h, left : left + w] = digit
    ys, xs = np.mgrid[0:MNIST_SIDE, 0:MNIST_SIDE]
    mass = float(out.sum())
    cy, cx = float((out * ys).sum()) / mass, float((out * xs).sum()) / mass
    # Shift the centre of mass to the centre, but never push ink out of the field.
    dy = float(np.clip(_CENTRE - cy, -top, MNIST_SIDE - (top + h)))
    dx = float(np.clip(_CENTRE - cx, -left, MNIST_SIDE - (left + w)))
    shift = np.float32([[1, 0, dx], [0, 1, dy]])
    out = cv2.warpAffine(
        out, shift, (MNIST_SIDE, MNIST_SIDE), flags=cv2.INTER_LINEAR, borderValue=0.0
    )
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def _to_grey(img: np.ndarray) -> np.ndarray:
    """Colour (BGR/BGRA) or grey of any dtype -> float32 grey in [0, 1], alpha over white."""
    arr = np.asarray(img)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    unit = _as_unit_float(arr)
    if unit.ndim == 2:
        return unit
    if unit.ndim != 3 or unit.shape[2] not in (3, 4):
        raise ValueError(f"expected a grey or colour image, got shape {arr.shape}")
    colour = unit[:, :, :3]
    if unit.shape[2] == 4:
        alpha = unit[:, :, 3:4]
        colour = colour * alpha + (1.0 - alpha)
    return cv2.cvtColor(np.ascontiguousarray(colour), cv2.COLOR_BGR2GRAY)


def _looks_like_mnist(grey: np.ndarray) -> bool:
    """A 28x28 image with a dark frame and bright ink is already in MNIST's format."""
    if grey.shape != (MNIST_SIDE, MNIST_SIDE):
        return False
    frame = np.concatenate([grey[:2].ravel(), grey[-2:].ravel(), grey[:, :2].ravel()])
    frame = np.concatenate([frame, grey[:, -2:].ravel()])
    return float(frame.mean()) < 0.1 and float(grey.max()) > 0.3


def normalise_digit_image(img: np.ndarray) -> np.ndarray:
    """Any single-digit image (either polarity, colour or grey, any size) -> (28, 28) float32.

    A 28x28 image already in MNIST's format (white on black) passes through unchanged so
    MNIST samples are not degraded by a second normalisation.
    """
    arr = np.asarray(img)
    if arr.ndim not in (2, 3) or arr.size == 0:
        raise ValueError(f"expected a grey or colour image, got shape {arr.shape}")
    grey = _to_grey(arr)
    # Grey pixels may come as 2-D or as three equal channels (images.load_image gives BGR).
    channels = arr.reshape(*arr.shape[:2], -1)
    is_grey = channels.shape[2] == 1 or (
        channels.shape[2] == 3 and bool((channels == channels[..., :1]).all())
    )
    if is_grey and _looks_like_mnist(grey):
        return grey.astype(np.float32)

    # The frame is mostly background: its median tells the polarity and the paper level.
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    background = float(np.median(border))
    if min(grey.shape) >= 40:
        # A photo: let the page pipeline separate ink from uneven light and paper.
        from digits_jax.extraction import single_digit_ink  # extraction imports this module

        grey8 = (grey * 255).round().astype(np.uint8)
        ink = single_digit_ink(grey8, light_ink=background <= 0.5)
        if ink is not None:
            return to_mnist(ink)
    ink = background - grey if background > 0.5 else grey - background
    ink = np.clip(ink, 0.0, None)
    if float(ink.max()) < 0.05:
        return np.zeros((MNIST_SIDE, MNIST_SIDE), np.float32)
    ink = (ink / float(ink.max())).astype(np.float32)
    level, _ = cv2.threshold((ink * 255).astype(np.uint8), 0, 255, cv2.THRESH_OTSU)
    mask = (ink * 255 > max(level, 40)).astype(np.uint8)
    # Keep the digit, drop specks: components much smaller than the largest one.
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n > 2:
        areas = stats[1:, cv2.CC_STAT_AREA]
        keep = np.flatnonzero(areas >= 0.08 * areas.max()) + 1
        mask = np.isin(labels, keep).astype(np.uint8)
    return to_mnist(mask.astype(np.float32))
