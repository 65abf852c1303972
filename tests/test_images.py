"""load_image: good files load as BGR uint8; every bad file gives a one-line DigitsJaxError."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from digits_jax.errors import DigitsJaxError
from digits_jax.images import MAX_PIXELS, load_image, load_image_with_scale


def _page(h: int = 300, w: int = 400) -> np.ndarray:
    img = np.full((h, w, 3), 230, np.uint8)
    cv2.putText(img, "42", (50, 200), cv2.FONT_HERSHEY_SIMPLEX, 4, (20, 20, 20), 8)
    return img


def _error(path: Path, **kwargs) -> str:
    with pytest.raises(DigitsJaxError) as info:
        load_image(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message and message
    return message


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".tif"])
def test_loads_supported_formats_as_bgr_uint8(tmp_path: Path, ext: str) -> None:
    path = tmp_path / f"page{ext}"
    assert cv2.imwrite(str(path), _page())
    img = load_image(path)
    assert img.dtype == np.uint8 and img.shape == (300, 400, 3)
    assert img[5, 5].mean() > 200 and img[150:200, 60:200].min() < 60


def test_grey_input_becomes_three_channels(tmp_path: Path) -> None:
    path = tmp_path / "grey.png"
    cv2.imwrite(str(path), cv2.cvtColor(_page(), cv2.COLOR_BGR2GRAY))
    assert load_image(path).shape == (300, 400, 3)


def test_downscales_and_reports_scale(tmp_path: Path) -> None:
    path = tmp_path / "big.jpg"
    cv2.imwrite(str(path), _page(1200, 3000))
    img, scale = load_image_with_scale(str(path), max_side=1000)
    assert max(img.shape[:2]) == 1000
    assert scale == pytest.approx(3.0, rel=1e-3)
    small, s1 = load_image_with_scale(path, max_side=5000)
    assert small.shape[:2] == (1200, 3000) and s1 == 1.0


def test_transparent_png_becomes_white_paper(tmp_path: Path) -> None:
    rgba = np.zeros((50, 60, 4), np.uint8)  # fully transparent black
    rgba[20:30, 20:40] = (0, 0, 0, 255)  # opaque black ink
    path = tmp_path / "alpha.png"
    cv2.imwrite(str(path), rgba)
    img = load_image(path)
    assert img.shape == (50, 60, 3)
    assert img[0, 0].tolist() == [255, 255, 255] and img[25, 30].tolist() == [0, 0, 0]


def test_sixteen_bit_png(tmp_path: Path) -> None:
    path = tmp_path / "deep.png"
    cv2.imwrite(str(path), (_page().astype(np.uint16) * 257))
    img = load_image(path)
    assert img.dtype == np.uint8 and img[5, 5].mean() == pytest.approx(230, abs=1)


def test_missing_file(tmp_path: Path) -> None:
    assert "not found" in _error(tmp_path / "nope.jpg")


def test_directory(tmp_path: Path) -> None:
    assert "not a file" in _error(tmp_path)


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    assert "empty" in _error(path)


def test_text_file_is_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("these are not the pixels you are looking for\n" * 10)
    assert "not an image" in _error(path)


def test_truncated_jpeg(tmp_path: Path) -> None:
    noisy = np.random.default_rng(0).integers(0, 255, (400, 400, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", noisy)
    assert ok
    path = tmp_path / "cut.jpg"
    path.write_bytes(buf.tobytes()[: len(buf) // 2])
    assert "truncated" in _error(path)


def test_truncated_png(tmp_path: Path) -> None:
    noisy = np.random.default_rng(0).integers(0, 255, (400, 400, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".png", noisy)
    assert ok
    path = tmp_path / "cut.png"
    path.write_bytes(buf.tobytes()[: len(buf) // 2])
    _error(path)


def test_corrupt_header(tmp_path: Path) -> None:
    path = tmp_path / "bad.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    assert "PNG" in _error(path)


@pytest.mark.parametrize(
    ("fmt", "name"), [("GIF", "GIF"), ("WEBP", "WebP"), ("ICO", "ICO"), ("PDF", "PDF")]
)
def test_unsupported_format(tmp_path: Path, fmt: str, name: str) -> None:
    path = tmp_path / "page.img"
    Image.fromarray(_page(64, 64)).save(path, format=fmt)
    message = _error(path)
    assert "unsupported" in message and name in message


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims the given size; no pixel data needed to read it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b""))


@pytest.mark.parametrize("side", [8000, 60000])
def test_huge_dimensions_refused_before_decoding(tmp_path: Path, side: int) -> None:
    assert side * side > MAX_PIXELS
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(side, side))
    assert "too" in _error(path) and "pixels" in _error(path)


@pytest.mark.parametrize("max_side", [400, 2000])
def test_exif_orientation_applied(tmp_path: Path, max_side: int) -> None:
    """Phone photos store pixels sideways plus an EXIF rotation; load them upright."""
    pixels = np.zeros((300, 1000, 3), np.uint8)
    pixels[:, :50] = 255  # left edge white: after a 90-degree turn it is the top edge
    img = Image.fromarray(pixels)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / "phone.jpg"
    img.save(path, exif=exif.tobytes())
    out, scale = load_image_with_scale(path, max_side=max_side)
    assert out.shape[0] > out.shape[1]
    assert out[:5].mean() > 200 and out[-5:].mean() < 50
    assert scale == pytest.approx(1000 / max(out.shape[:2]), rel=1e-3)
