"""Load user photos safely: clear one-line errors for bad files, no decompression bombs.

The header is read (lazily, by Pillow) before any pixel is decoded, so an image that
claims huge dimensions is refused without allocating memory for it. Pixels are decoded
by OpenCV, which applies the EXIF orientation of phone photos.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from digits_jax.errors import DigitsJaxError

MAX_PIXELS = 40_000_000
MAX_FILE_BYTES = 200 * 1024 * 1024
SUPPORTED = "JPEG, PNG, BMP or TIFF"

_SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "JPEG": (b"\xff\xd8\xff",),
    "PNG": (b"\x89PNG\r\n\x1a\n",),
    "BMP": (b"BM",),
    "TIFF": (b"II*\x00", b"MM\x00*"),
}
# Recognised but refused, so the message can name what the user gave us.
_OTHER_FORMATS: dict[str, tuple[bytes, ...]] = {
    "GIF": (b"GIF87a", b"GIF89a"),
    "PDF": (b"%PDF",),
    "ICO": (b"\x00\x00\x01\x00",),
    "PSD": (b"8BPS",),
    "JPEG 2000": (b"\x00\x00\x00\x0cjP",),
    "SVG": (b"<?xml", b"<svg"),
    "ZIP": (b"PK\x03\x04",),
}


def _sniff(head: bytes) -> str | None:
    for name, sigs in _SIGNATURES.items():
        if head.startswith(sigs):
            return name
    return None


def _sniff_other(head: bytes) -> str | None:
    if head[4:8] == b"ftyp":
        return "HEIC/AVIF"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "WebP"
    for name, sigs in _OTHER_FORMATS.items():
        if head.lstrip().startswith(sigs):
            return name
    return None


def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise DigitsJaxError(f"image not found: {path}")
    if not path.is_file():
        raise DigitsJaxError(f"not a file: {path}")
    size = path.stat().st_size
    if size == 0:
        raise DigitsJaxError(f"image file is empty (0 bytes): {path}")
    if size > MAX_FILE_BYTES:
        raise DigitsJaxError(
            f"image file too large ({size / 2**20:.0f} MiB > {MAX_FILE_BYTES // 2**20} MiB): {path}"
        )
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DigitsJaxError(f"cannot read image {path}: {exc.strerror or exc}") from None


def _header_size(data: bytes, path: Path, fmt: str) -> tuple[int, int, bool]:
    """(width, height, has_alpha) from the header alone; no pixels are decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
                alpha = im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or ("transparency" in im.info)
    except Image.DecompressionBombError:
        raise DigitsJaxError(
            f"image has too many pixels (limit {MAX_PIXELS / 1e6:.0f} megapixels): {path}"
        ) from None
    except Exception:
        raise DigitsJaxError(f"not a valid {fmt} image (corrupt header): {path}") from None
    return width, height, alpha


def _jpeg_truncated(data: bytes) -> bool:
    """A complete JPEG has an end-of-image marker after its last scan. Entropy-coded data
    cannot contain 0xFFD9, so its absence after the last start-of-scan means truncation
    (OpenCV would otherwise silently fill the missing part with grey)."""
    last_scan = data.rfind(b"\xff\xda")
    return last_scan < 0 or data.find(b"\xff\xd9", last_scan) < 0


def _reduction_flag(longest: int, max_side: int) -> tuple[int, int]:
    """JPEG can be decoded at 1/2, 1/4 or 1/8 size for free; use the largest reduction
    that still leaves at least max_side pixels on the longer side."""
    for factor, flag in (
        (8, cv2.IMREAD_REDUCED_COLOR_8),
        (4, cv2.IMREAD_REDUCED_COLOR_4),
        (2, cv2.IMREAD_REDUCED_COLOR_2),
    ):
        if longest // factor >= max_side:
            return flag, factor
    return cv2.IMREAD_COLOR, 1


def _to_bgr8(img: np.ndarray) -> np.ndarray:
    """Any decoded image (grey, BGR, BGRA; 8/16-bit or float) -> uint8 BGR, alpha over white."""
    if img.dtype != np.uint8:
        if img.dtype == np.uint16:
            img = (img.astype(np.float32) / 257.0).round()
        else:
            img = img.astype(np.float32)
            hi = float(np.nanmax(img)) if img.size else 1.0
            img = np.nan_to_num(img) * (255.0 if hi <= 1.0 else 255.0 / hi)
        img = np.clip(img, 0, 255).astype(np.uint8)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 1:
        return cv2.cvtColor(img[:, :, 0], cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 4:
        alpha = img[:, :, 3:4]
        if alpha.min() == 255:
            return np.ascontiguousarray(img[:, :, :3])
        a = alpha.astype(np.uint16)
        blended = (img[:, :, :3].astype(np.uint16) * a + 255 * (255 - a) + 127) // 255
        return blended.astype(np.uint8)
    return np.ascontiguousarray(img[:, :, :3])


def load_image_with_scale(path: str | Path, max_side: int = 2000) -> tuple[np.ndarray, float]:
    """Load a photo as uint8 BGR with its longer side <= max_side.

    Returns (image, scale) where scale = original / working size, so a box found in the
    working image times ``scale`` is in the original photo's pixel coordinates.
    Raises DigitsJaxError with a one-line message for any unusable file.
    """
    path = Path(path)
    data = _read_bytes(path)
    fmt = _sniff(data[:16])
    if fmt is None:
        other = _sniff_other(data[:32])
        if other is not None:
            raise DigitsJaxError(f"unsupported image format {other} (use {SUPPORTED}): {path}")
        raise DigitsJaxError(f"not an image file (expected {SUPPORTED}): {path}")

    width, height, alpha = _header_size(data, path, fmt)
    if width <= 0 or height <= 0:
        raise DigitsJaxError(f"image has no pixels ({width}x{height}): {path}")
    if width * height > MAX_PIXELS:
        raise DigitsJaxError(
            f"image too large: {width}x{height} is {width * height / 1e6:.0f} megapixels "
            f"(limit {MAX_PIXELS / 1e6:.0f}): {path}"
        )
    if fmt == "JPEG" and _jpeg_truncated(data):
        raise DigitsJaxError(f"JPEG image is truncated or damaged: {path}")

    buf = np.frombuffer(data, np.uint8)
    if alpha:
        flag = cv2.IMREAD_UNCHANGED  # keep alpha so transparent areas become white paper
    elif fmt == "JPEG":
        flag, _ = _reduction_flag(max(width, height), max_side)
    else:
        flag = cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH
    try:
        img = cv2.imdecode(buf, flag)
    except cv2.error:
        img = None
    if img is None or img.size == 0:
        raise DigitsJaxError(f"cannot decode {fmt} image (truncated or damaged): {path}")
    img = _to_bgr8(img)

    # EXIF orientation may swap the axes; the original size is the upright one.
    orig_long = max(width, height)
    longest = max(img.shape[:2])
    if longest > max_side:
        s = max_side / longest
        new_size = (max(1, round(img.shape[1] * s)), max(1, round(img.shape[0] * s)))
        img = cv2.resize(img, new_size, interpolation=cv2.INTER_AREA)
    scale = orig_long / max(img.shape[:2])
    return np.ascontiguousarray(img), float(scale)


def load_image(path: str | Path, max_side: int = 2000) -> np.ndarray:
    """Load a photo as uint8 BGR (H, W, 3) with its longer side <= max_side."""
    return load_image_with_scale(path, max_side)[0]
