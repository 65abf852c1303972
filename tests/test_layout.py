"""Reading order and number grouping on plain box lists."""

from __future__ import annotations

import math

import numpy as np

from digits_jax.layout import (
    areas,
    estimate_skew,
    group_lines,
    group_numbers,
    intersections,
    iou_matrix,
)


def _rows(rows: list[list[float]], height: float = 40, width: float = 26, angle_deg: float = 0):
    """Boxes at given x positions per row (rows 80 px apart), rotated about the origin.
    Returns (boxes, expected reading order as lists of box indices)."""
    a = math.radians(angle_deg)
    boxes, expected = [], []
    for r, xs in enumerate(rows):
        line = []
        for x in xs:
            cx, cy = x + width / 2, 100 + 80 * r + height / 2
            rx, ry = cx * math.cos(a) - cy * math.sin(a), cx * math.sin(a) + cy * math.cos(a)
            line.append(len(boxes))
            boxes.append((rx - width / 2, ry - height / 2, width, height))
        expected.append(line)
    return boxes, expected


def _shuffled(boxes, expected, seed=0):
    perm = np.random.default_rng(seed).permutation(len(boxes))
    inverse = {int(old): new for new, old in enumerate(perm)}
    return [boxes[i] for i in perm], [[inverse[i] for i in line] for line in expected]


def test_empty() -> None:
    assert group_lines([]) == []
    assert group_numbers([]) == []


def test_single_box() -> None:
    assert group_lines([(5, 5, 10, 20)]) == [[0]]
    assert group_numbers([(5, 5, 10, 20)]) == [[0]]


def test_two_lines_in_order() -> None:
    boxes, expected = _rows([[10, 50, 90, 130], [10, 50, 90]])
    boxes, expected = _shuffled(boxes, expected)
    assert group_lines(boxes) == expected


def test_three_lines_slightly_rotated() -> None:
    for angle in (-5.0, -2.0, 3.0, 6.0):
        boxes, expected = _rows(
            [[100 + 40 * k for k in range(10)], [100 + 40 * k for k in range(7)], [100, 150]],
            angle_deg=angle,
        )
        boxes, expected = _shuffled(boxes, expected, seed=int(angle * 10) % 7)
        assert group_lines(boxes) == expected, angle
        assert abs(math.degrees(estimate_skew(boxes)) - angle) < 0.5


def test_different_heights_and_a_descending_digit() -> None:
    # A line of mixed heights (a short 2, a tall 7 hanging lower), and a line below.
    boxes = [(10, 100, 25, 40), (45, 110, 22, 28), (80, 108, 25, 50), (115, 98, 20, 44)]
    boxes += [(10, 190, 25, 40), (45, 192, 25, 38)]
    assert group_lines(boxes) == [[0, 1, 2, 3], [4, 5]]


def test_small_fragment_joins_its_line() -> None:
    boxes = [(10, 100, 25, 40), (50, 100, 25, 40), (90, 100, 25, 40), (52, 95, 20, 6)]
    assert group_lines(boxes) == [[0, 3, 1, 2]]


def test_numbers_split_at_wide_gaps() -> None:
    # "12 345   6": digits 26 wide, 8 px apart inside numbers.
    xs = [0, 34, 110, 144, 178, 300]
    boxes = [(x, 0, 26, 40) for x in xs]
    assert group_numbers(boxes) == [[0, 1], [2, 3, 4], [5]]


def test_evenly_spaced_digits_stay_one_number() -> None:
    boxes = [(x, 0, 26, 40) for x in range(0, 400, 50)]  # 24 px gaps everywhere
    assert group_numbers(boxes) == [list(range(8))]


def test_narrow_ones_do_not_break_a_number() -> None:
    # "1111" and "2112": a 1's box is narrow, its box gaps wide, but centres are regular.
    boxes = [(0, 0, 26, 40), (40, 0, 6, 40), (68, 0, 6, 40), (90, 0, 26, 40)]
    assert group_numbers(boxes) == [[0, 1, 2, 3]]


def test_two_far_apart_digits_are_two_numbers() -> None:
    assert group_numbers([(200, 0, 26, 40), (0, 0, 26, 40)]) == [[1], [0]]


def test_numbers_returned_in_left_to_right_order() -> None:
    boxes = [(144, 0, 26, 40), (0, 0, 26, 40), (110, 0, 26, 40), (34, 0, 26, 40)]
    assert group_numbers(boxes) == [[1, 3], [2, 0]]


def test_box_overlaps() -> None:
    a = [(0, 0, 10, 10), (20, 0, 5, 5)]
    b = [(5, 0, 10, 10), (0, 0, 10, 10), (100, 100, 3, 3)]
    np.testing.assert_allclose(intersections(a, b), [[50, 100, 0], [0, 0, 0]])
    np.testing.assert_allclose(areas(a), [100, 25])
    np.testing.assert_allclose(iou_matrix(a, b), [[50 / 150, 1, 0], [0, 0, 0]])
    assert iou_matrix([], b).shape == (0, 3) and iou_matrix(a, []).shape == (2, 0)
