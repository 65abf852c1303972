"""Synthetic fused digit pairs: what a blob of two touching or overlapping digits looks
like once the extractor has normalised it as one digit.

Extraction can only split such a blob if something tells it apart from a wide single
digit; these pairs (and plain single digits, normalised the same way) are the training
data for that decision. ``scripts/probe_pair_detector.py`` measures how well a detector
trained on them flags the fused blobs of generated pages.
"""

from __future__ import annotations

import cv2
import numpy as np

from digits_jax.mnist_format import _as_unit_float, _ink_bbox, to_mnist

# Horizontal overlap of the two digits' ink boxes, as a fraction of the narrower one.
MAX_OVERLAP = 0.45


def _ink(digit: np.ndarray) -> np.ndarray:
    """A digit image as float ink in [0, 1], cropped to its ink (as ``to_mnist`` does)."""
    ink = _as_unit_float(digit)
    y0, y1, x0, x1 = _ink_bbox(ink)
    return ink[y0:y1, x0:x1]


def fuse(
    left: np.ndarray, right: np.ndarray, overlap: float, scale: float, dy: float
) -> np.ndarray:
    """Ink of ``right`` (resized by ``scale``, shifted down by ``dy`` of ``left``'s height)
    drawn over ``left`` so that their ink boxes overlap by ``overlap`` of the narrower."""
    a, b = _ink(left), _ink(right)
    b = cv2.resize(b, (max(1, round(b.shape[1] * scale)), max(1, round(b.shape[0] * scale))))
    shift = round(overlap * min(a.shape[1], b.shape[1]))
    x = a.shape[1] - shift
    y = round(dy * a.shape[0])
    top = min(0, y)
    height = max(a.shape[0], y + b.shape[0]) - top
    canvas = np.zeros((height, x + b.shape[1]), np.float32)
    canvas[-top : -top + a.shape[0], : a.shape[1]] = a
    view = canvas[y - top : y - top + b.shape[0], x : x + b.shape[1]]
    np.maximum(view, b, out=view)
    return canvas


def random_fuse(rng: np.random.Generator, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """``fuse`` with an overlap, a size ratio and a vertical shift drawn by ``rng``."""
    return fuse(
        left,
        right,
        overlap=rng.uniform(0.0, MAX_OVERLAP),
        scale=rng.uniform(0.85, 1.15),
        dy=rng.uniform(-0.1, 0.1),
    )


def pairs_and_singles(
    rng: np.random.Generator, digits: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` fused pairs and ``n`` single digits drawn from ``digits`` (N, 28, 28), both as
    MNIST-format crops (n, 28, 28) float32, normalised as extraction normalises a blob."""
    pick = lambda: digits[rng.integers(len(digits))]  # noqa: E731
    pairs = [to_mnist(random_fuse(rng, pick(), pick())) for _ in range(n)]
    singles = [to_mnist(pick()) for _ in range(n)]
    return np.stack(pairs), np.stack(singles)


def pair_class(left: np.ndarray | int, right: np.ndarray | int) -> np.ndarray | int:
    """The class of an ordered pair of digits among ten singles and a hundred pairs."""
    return 10 + 10 * np.asarray(left) + np.asarray(right)


def labelled_pairs_and_singles(
    rng: np.random.Generator, digits: np.ndarray, labels: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` fused pairs of ``digits`` (N, 28, 28) drawn by ``rng``, then every one of the
    digits alone, as MNIST-format crops (n + N, 28, 28) uint8, with their classes: a
    single digit its label, a pair ``pair_class`` of its left and right digits' labels."""
    picks = rng.integers(len(digits), size=(n, 2))
    pairs = [to_mnist(random_fuse(rng, digits[i], digits[j])) for i, j in picks]
    singles = [to_mnist(d) for d in digits]
    crops = np.round(np.stack(pairs + singles) * 255).astype(np.uint8)
    classes = np.concatenate([pair_class(labels[picks[:, 0]], labels[picks[:, 1]]), labels])
    return crops, classes.astype(np.int32)
