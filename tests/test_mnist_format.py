"""to_mnist / normalise_digit_image produce MNIST-like 28x28 crops."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from digits_jax.mnist_format import normalise_digit_image, stroke_width, to_mnist


def _digit(text: str = "7", size: tuple[int, int] = (300, 200), thickness: int = 12):
    img = np.zeros(size, np.uint8)
    cv2.putText(img, text, (20, size[0] - 40), cv2.FONT_HERSHEY_SIMPLEX, 7, 255, thickness)
    return img


def _bbox(img: np.ndarray, level: float = 0.05) -> tuple[int, int]:
    ys, xs = np.nonzero(img > level)
    return int(ys.max() - ys.min() + 1), int(xs.max() - xs.min() + 1)


def _centre(img: np.ndarray) -> tuple[float, float]:
    ys, xs = np.mgrid[: img.shape[0], : img.shape[1]]
    return float((img * ys).sum() / img.sum()), float((img * xs).sum() / img.sum())


def _width_28(img: np.ndarray) -> float:
    big = cv2.resize(img, None, fx=4, fy=4, interpolation=cv2.INTER_LINEAR)
    return stroke_width(big > 0.5) / 4


@pytest.mark.parametrize("text", ["0", "1", "4", "7"])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
def test_output_properties(text: str, dtype) -> None:
    crop = _digit(text).astype(dtype)
    out = to_mnist(crop)
    assert out.shape == (28, 28) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() == pytest.approx(1.0, abs=0.02)
    # The longer side of the ink fills a 20 px box (+-1 for anti-aliased edges).
    assert 19 <= max(_bbox(out)) <= 22
    cy, cx = _centre(out)
    assert abs(cy - 14) < 1.0 and abs(cx - 14) < 1.0


def test_aspect_ratio_kept() -> None:
    one = np.zeros((200, 120), np.uint8)
    cv2.line(one, (70, 20), (55, 180), 255, 10)  # a slanted stroke, aspect about 1:6
    out = to_mnist(one)
    h, w = _bbox(out, 0.3)
    assert h >= 19 and 3 <= w <= 8


def test_stroke_width_brought_near_mnist() -> None:
    thin = to_mnist(_digit("8", (600, 400), thickness=3))
    thick = to_mnist(_digit("8", (300, 200), thickness=40))
    for out in (thin, thick):
        assert 1.6 <= _width_28(out) <= 3.6


def test_tiny_crop_is_enlarged() -> None:
    small = cv2.resize(_digit("3"), (10, 15), interpolation=cv2.INTER_AREA)
    out = to_mnist(small)
    assert max(_bbox(out, 0.2)) >= 17


def test_empty_crop_gives_blank() -> None:
    assert not to_mnist(np.zeros((40, 30), np.uint8)).any()


def test_mnist_crop_passes_through_unchanged() -> None:
    mnist_like = to_mnist(_digit("5"))
    assert np.array_equal(normalise_digit_image(mnist_like), mnist_like)
    as_uint8 = (mnist_like * 255).round().astype(np.uint8)
    np.testing.assert_allclose(normalise_digit_image(as_uint8), as_uint8 / 255.0, atol=1e-6)
    # as loaded from a PNG by images.load_image: three equal BGR channels
    as_bgr = np.repeat(as_uint8[:, :, None], 3, axis=2)
    np.testing.assert_allclose(normalise_digit_image(as_bgr), as_uint8 / 255.0, atol=1e-6)


def test_dark_on_light_colour_photo_of_a_digit() -> None:
    ink = _digit("2", (240, 180), thickness=10)
    rng = np.random.default_rng(1)
    paper = np.full((240, 180, 3), (200, 215, 225), np.float32) + rng.normal(0, 4, (240, 180, 3))
    photo = paper * (1 - 0.8 * (ink[:, :, None] / 255.0))
    photo = np.clip(photo, 0, 255).astype(np.uint8)
    out = normalise_digit_image(photo)
    reference = normalise_digit_image(ink)
    assert out.shape == (28, 28) and out.dtype == np.float32
    assert out[0].max() < 0.05 and out.max() > 0.9  # white ink on black
    assert np.abs(out - reference).mean() < 0.05


def test_blank_image_gives_blank() -> None:
    assert not normalise_digit_image(np.full((50, 50, 3), 200, np.uint8)).any()


def test_unevenly_lit_photo_of_a_digit() -> None:
    ink = _digit("4", (400, 300), thickness=14).astype(np.float32) / 255.0
    _, xx = np.mgrid[0:400, 0:300].astype(np.float32)
    light = 0.5 + 0.5 * xx / 300  # one side twice as bright as the other
    paper = np.full((400, 300, 3), (190, 210, 225), np.float32) * light[:, :, None]
    photo = np.clip(paper * (1 - 0.75 * ink[:, :, None]), 0, 255).astype(np.uint8)
    out = normalise_digit_image(photo)
    reference = normalise_digit_image(_digit("4", (400, 300), thickness=14))
    assert out[0].max() < 0.05 and out.max() > 0.9
    assert np.abs(out - reference).mean() < 0.05
    # light ink on a dark board gives the same digit
    board = np.clip(60 * light[:, :, None] + 180 * ink[:, :, None], 0, 255).astype(np.uint8)
    assert np.abs(normalise_digit_image(board) - reference).mean() < 0.05
