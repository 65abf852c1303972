"""page_region.desk_mask on photos of a sheet drawn here: desk, shadows, ruled paper."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from digits_jax.page_region import desk_mask

H, W = 900, 1200
SHEET = np.array([[90, 50], [W - 60, 30], [W - 110, H - 45], [60, H - 80]], np.int32)


def _sheet_on_desk(desk_bgr=(120, 150, 175), seed: int = 0) -> np.ndarray:
    """A light sheet, tilted, on a tan desk with a grain (the desk is brighter than a
    quarter of the paper, so brightness alone does not say it is no paper)."""
    rng = np.random.default_rng(seed)
    grain = cv2.GaussianBlur(rng.normal(0, 12, (H, W)).astype(np.float32), (0, 0), 6) * 3
    img = np.asarray(desk_bgr, np.float32) + grain[:, :, None]
    sheet = np.zeros((H, W), np.uint8)
    cv2.fillPoly(sheet, [SHEET], 255, cv2.LINE_AA)
    a = (sheet.astype(np.float32) / 255)[:, :, None]
    img = img * (1 - a) + np.array([215, 225, 232], np.float32) * a
    img = cv2.GaussianBlur(img, (0, 0), 1.0) + rng.normal(0, 3, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _grey(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)


def test_the_desk_around_a_sheet_is_found() -> None:
    mask = desk_mask(_grey(_sheet_on_desk()))
    assert mask.shape == (H, W) and mask.dtype == bool
    for x, y in [(20, 20), (W - 15, H // 2), (W // 2, H - 10), (20, H - 20), (W - 20, 10)]:
        assert mask[y, x], (x, y)
    inside = np.zeros((H, W), np.uint8)
    cv2.fillPoly(inside, [SHEET], 1)
    inside = cv2.erode(inside, np.ones((15, 15), np.uint8)) > 0
    assert not mask[inside].any()  # not a pixel of the sheet, a few px in from its edge


def test_a_desk_as_light_as_a_shadowed_page_is_still_desk() -> None:
    """A grey-green desk, half as bright as the paper: darker than it, but not by the
    factor of 4 that step 2 of extraction takes for "not paper"."""
    mask = desk_mask(_grey(_sheet_on_desk(desk_bgr=(95, 110, 100))))
    assert mask[H // 2, 20] and not mask[H // 2, W // 2]


@pytest.mark.parametrize("sigma, depth", [(15, 0.5), (6, 0.65)])
def test_a_soft_shadow_reaching_the_frame_is_not_desk(sigma: float, depth: float) -> None:
    """A phone's shadow darkens the page as much as a desk would, but its edge is a ramp
    (here 6-15 px of blur; a deep one over 6 px still changes by 160 grey levels, so
    only the step's sharpness tells it from the sheet's edge)."""
    yy, xx = np.mgrid[0:H, 0:W]
    shadow = cv2.GaussianBlur(((xx + yy) < 700).astype(np.float32), (0, 0), sigma)
    img = (235 * (1 - depth * shadow)).astype(np.uint8)
    cv2.putText(img, "4381", (300, 500), cv2.FONT_HERSHEY_SIMPLEX, 4, 40, 10)
    assert not desk_mask(img).any()


def test_a_page_filling_the_frame_has_no_desk() -> None:
    """Ruled lines, a margin and writing cut the page into no regions: they are thin."""
    img = np.full((H, W), 225, np.uint8)
    for y in range(60, H, 45):
        cv2.line(img, (0, y), (W - 1, y), 150, 2, cv2.LINE_AA)
    cv2.line(img, (110, 0), (110, H - 1), 120, 3, cv2.LINE_AA)
    cv2.putText(img, "0123456789", (150, 300), cv2.FONT_HERSHEY_SIMPLEX, 3, 30, 9)
    assert not desk_mask(img).any()
    assert not desk_mask(np.zeros((10, 10), np.uint8)).any()  # too small to tell


def test_a_small_note_on_a_big_desk_is_left_alone() -> None:
    """When the desk is the largest region, it is taken for the page: nothing darker
    than it reaches the frame, so nothing is masked, and the note is read as before."""
    img = np.full((H, W), 110, np.uint8)
    cv2.rectangle(img, (450, 300), (750, 600), 230, -1)
    cv2.putText(img, "42", (500, 500), cv2.FONT_HERSHEY_SIMPLEX, 4, 40, 10)
    assert not desk_mask(cv2.GaussianBlur(img, (0, 0), 1.0)).any()
