"""Reading photos: extraction, one batched classification, and the result per page.

Many photos in one call share one loaded and compiled model; all their crops
are classified together in batches. A photo that cannot be read is reported
with its error while the others are still read.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from digits_jax import images, layout
from digits_jax.errors import DigitsJaxError
from digits_jax.extraction import Digit, extract_digits

UNSURE = "?"


@dataclass
class ReadDigit:
    digit: int
    confidence: float
    box: tuple[int, int, int, int]


@dataclass
class ReadLine:
    text: str
    numbers: list[str]
    digits: list[ReadDigit]


@dataclass
class PageResult:
    """One photo's digits by line, or the reason it could not be read."""

    path: str
    width: int = 0
    height: int = 0
    lines: list[ReadLine] = field(default_factory=list)
    error: str | None = None

    def text_lines(self) -> list[str]:
        return [line.text for line in self.lines]

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        if self.error is None:
            out.pop("error")
        return out


@dataclass
class ExtractedPage:
    """A photo and its digits before classification."""

    path: str
    image: np.ndarray
    scale: float
    lines: list[list[Digit]]

    @property
    def size(self) -> tuple[int, int]:
        h, w = self.image.shape[:2]
        return round(w * self.scale), round(h * self.scale)


def extract_page(path: str | Path) -> ExtractedPage:
    """Loads a photo (decode-capped and downscaled) and extracts its digits."""
    image, scale = images.load_image_with_scale(path)
    return ExtractedPage(str(path), image, scale, extract_digits(image, scale))


def probabilities(model: Any, crops: list[np.ndarray], tta: int = 1) -> np.ndarray:
    """Probabilities (N, 10) for 28x28 crops from a model or ensemble (``.probabilities``)."""
    if not crops:
        return np.zeros((0, 10), np.float32)
    return model.probabilities(np.stack(crops), tta)


def _line_result(digits: list[Digit], probs: np.ndarray, min_confidence: float) -> ReadLine:
    read = [
        ReadDigit(int(p.argmax()), round(float(p.max()), 6), tuple(int(v) for v in d.box))
        for d, p in zip(digits, probs, strict=True)
    ]
    chars = [
        str(r.digit) if float(p.max()) >= min_confidence else UNSURE
        for r, p in zip(read, probs, strict=True)
    ]
    groups = layout.group_numbers([d.box for d in digits])
    numbers = ["".join(chars[i] for i in group) for group in groups]
    return ReadLine("".join(chars), numbers, read)


def extract_or_error(path: str | Path) -> tuple[PageResult, ExtractedPage | None]:
    """One photo's extraction (no model needed), or its error as a result."""
    try:
        page = extract_page(path)
    except DigitsJaxError as error:
        return PageResult(str(path), error=str(error)), None
    w, h = page.size
    return PageResult(str(path), w, h), page


def extract_pages(paths: list[str | Path]) -> tuple[list[PageResult], list[ExtractedPage]]:
    """Loads and extracts each photo; a bad photo becomes an error result."""
    return collect([extract_or_error(path) for path in paths])


def collect(
    extracted: list[tuple[PageResult, ExtractedPage | None]],
) -> tuple[list[PageResult], list[ExtractedPage]]:
    """``extract_or_error`` outputs as (all results, the pages that were read)."""
    return [r for r, _ in extracted], [page for _, page in extracted if page is not None]


def classify_pages(
    results: list[PageResult],
    pages: list[ExtractedPage],
    model: Any,
    min_confidence: float = 0.0,
    tta: int = 1,
) -> list[PageResult]:
    """Fills the results of ``extract_pages`` with the model's reading, all crops in one batch."""
    crops = [d.crop for page in pages for line in page.lines for d in line]
    probs = probabilities(model, crops, tta)
    ok = iter(r for r in results if r.error is None)
    offset = 0
    for page in pages:
        result = next(ok)
        for line in page.lines:
            result.lines.append(
                _line_result(line, probs[offset : offset + len(line)], min_confidence)
            )
            offset += len(line)
    return results


def read_pages(
    paths: list[str | Path], model: Any, min_confidence: float = 0.0, tta: int = 1
) -> tuple[list[PageResult], list[ExtractedPage]]:
    """Reads each photo; returns results (errors included) and the extracted pages."""
    results, pages = extract_pages(paths)
    return classify_pages(results, pages, model, min_confidence, tta), pages
