"""Writing what the reader saw: annotated photos and the 28x28 crops."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import cv2
import numpy as np

from digits_jax.errors import DigitsJaxError
from digits_jax.extraction import Digit

GREEN, ORANGE, RED = (40, 170, 40), (0, 140, 255), (0, 0, 230)


def write_image(path: str | Path, image: np.ndarray) -> None:
    """Writes an image atomically (temporary file, then rename); one-line error on failure."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=path.suffix or ".png", dir=path.parent)
        os.close(fd)
    except OSError as error:
        raise DigitsJaxError(f"cannot write {path}: {error.strerror}") from error
    try:
        if not cv2.imwrite(tmp, image):
            raise DigitsJaxError(f"cannot write {path}: unsupported image extension")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def crop_to_uint8(crop: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(crop * 255), 0, 255).astype(np.uint8)


def draw_boxes(
    image: np.ndarray,
    scale: float,
    boxes: list[tuple[int, int, int, int]],
    labels: list[str],
    confidences: list[float] | None = None,
) -> np.ndarray:
    """The working image with each box (given in original pixels) and its label drawn on it."""
    out = image.copy()
    thickness = max(1, round(max(out.shape[:2]) / 600))
    for i, (box, label) in enumerate(zip(boxes, labels, strict=True)):
        x, y, w, h = (round(v / scale) for v in box)
        conf = confidences[i] if confidences is not None else 1.0
        colour = GREEN if conf >= 0.9 else ORANGE if conf >= 0.5 else RED
        cv2.rectangle(out, (x, y), (x + w, y + h), colour, thickness)
        size = max(0.5, h / 40)
        cv2.putText(
            out,
            label,
            (x, max(0, y - 4)),
            cv2.FONT_HERSHEY_SIMPLEX,
            size,
            colour,
            thickness + 1,
            cv2.LINE_AA,
        )
    return out


def save_crops(stem: str, lines: list[list[Digit]], out_dir: str | Path) -> list[Path]:
    """Saves each digit's 28x28 crop as ``STEM_lLINE_dINDEX.png``; returns the paths."""
    out_dir = Path(out_dir)
    paths = []
    for li, line in enumerate(lines, 1):
        for di, digit in enumerate(line, 1):
            path = out_dir / f"{stem}_l{li:02d}_d{di:02d}.png"
            write_image(path, crop_to_uint8(digit.crop))
            paths.append(path)
    return paths
