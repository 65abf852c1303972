"""Synthetic page generator and extraction measurement: fast checks with stand-in digits."""

from __future__ import annotations

import importlib.util
import itertools
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np
import pytest

from digits_jax.errors import DigitsJaxError
from digits_jax.layout import iou_matrix
from digits_jax.synthetic_pages import (
    Page,
    TruthDigit,
    generate_page,
    save_page,
    stand_in_digits,
)

ROOT = Path(__file__).resolve().parents[1]
SMALL = (800, 600)
# Effects that make pixel-exact checks fuzzy; turned off where the ink itself is examined.
CLEAN = {"blur": False, "noise": False, "jpeg": False}


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    return stand_in_digits(np.random.default_rng(0), 300)


def page_for(digits, seed: int, difficulty: float = 0.5, **options) -> Page:
    options.setdefault("size", SMALL)
    return generate_page(np.random.default_rng(seed), *digits, difficulty, **options)


def all_truth(page: Page) -> list[TruthDigit]:
    return [d for line in page.lines for d in line]


def overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    return ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah


def test_image_shape_and_dtype(digits):
    page = page_for(digits, 1)
    assert page.image.dtype == np.uint8
    assert page.image.shape == (SMALL[1], SMALL[0], 3)
    page = generate_page(np.random.default_rng(2), *digits, 0.3)  # default, randomised size
    h, w = page.image.shape[:2]
    assert page.image.shape[2] == 3 and 1000 <= max(h, w) <= 1800


def test_same_seed_same_page_and_different_seed_different_page(digits):
    a, b = page_for(digits, 7, 0.8), page_for(digits, 7, 0.8)
    assert np.array_equal(a.image, b.image)
    assert a.lines == b.lines
    c = page_for(digits, 8, 0.8)
    assert c.text() != a.text() or not np.array_equal(c.image, a.image)


@pytest.mark.parametrize("difficulty", [0.0, 0.5, 1.0])
def test_truth_boxes_inside_image_and_disjoint_except_touching_pairs(digits, difficulty):
    for seed in range(6):
        page = page_for(digits, seed, difficulty)
        h, w = page.image.shape[:2]
        truth = all_truth(page)
        for d in truth:
            x, y, bw, bh = d.box
            assert x >= 0 and y >= 0 and x + bw <= w and y + bh <= h, d
            assert bw >= 2 and bh >= 8, d
        touching = set()
        for line in page.lines:
            for left, right in itertools.pairwise(line):
                if left.touches_next:
                    touching.add((id(left), id(right)))
        for i, a in enumerate(truth):
            for b in truth[i + 1 :]:
                if (id(a), id(b)) not in touching:
                    assert not overlap(a.box, b.box), (seed, a, b)


def test_line_structure_and_reading_order(digits):
    for seed in range(8):
        page = page_for(digits, seed, 0.7)
        assert 1 <= len(page.lines) <= 6
        for line in page.lines:
            assert 3 <= len(line) <= 12
            centres = [d.box[0] + d.box[2] / 2 for d in line]
            assert centres == sorted(centres)
        mid_y = [np.mean([d.box[1] + d.box[3] / 2 for d in line]) for line in page.lines]
        assert mid_y == sorted(mid_y)
    page = page_for(digits, 3, n_lines=4, digits_per_line=(5, 5))
    assert [len(line) for line in page.lines] == [5, 5, 5, 5]


def test_text_joins_lines_with_bars(digits):
    page = Page(
        image=np.zeros((4, 4, 3), np.uint8),
        lines=[
            [TruthDigit(1, (0, 0, 1, 1)), TruthDigit(2, (2, 0, 1, 1))],
            [TruthDigit(3, (0, 2, 1, 1))],
        ],
    )
    assert page.text() == "12|3"
    real = page_for(digits, 4)
    assert real.text().split("|") == ["".join(str(d.label) for d in line) for line in real.lines]


def test_touching_pairs_are_made_and_really_touch(digits):
    pairs = 0
    for seed in range(10):
        page = page_for(digits, seed, 1.0, touching=True, n_lines=4, digits_per_line=(10, 12))
        for line in page.lines:
            for left, right in itertools.pairwise(line):
                if left.touches_next:
                    pairs += 1
                    # Touching ink means the boxes meet (they may overlap a little).
                    assert right.box[0] <= left.box[0] + left.box[2]
    assert pairs >= 3
    page = page_for(digits, 0, 1.0, touching=False, n_lines=4, digits_per_line=(10, 12))
    assert not any(d.touches_next for d in all_truth(page))


def ink_box(grey: np.ndarray, box: tuple[int, int, int, int], pad: int = 4):
    """Around a truth box: the ink and paper levels, and the box of the pixels nearer ink."""
    x, y, w, h = box
    x0, y0 = max(0, x - pad), max(0, y - pad)
    region = grey[y0 : y + h + pad, x0 : x + w + pad].astype(np.float32)
    inside = grey[y : y + h, x : x + w].astype(np.float32)
    ink = float(np.percentile(inside, 5))
    ring = np.ones(region.shape, bool)
    ring[y - y0 : y - y0 + h, x - x0 : x - x0 + w] = False
    paper = float(np.median(region[ring]))
    ys, xs = np.nonzero(region < (ink + paper) / 2)
    found = (x0 + xs.min(), y0 + ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
    return ink, paper, found


@pytest.mark.parametrize(
    "options",
    [
        {"paper": "plain", "shadow": False, "perspective": False, "rotation": False},
        {"paper": "ruled"},
        {"paper": "squared"},
        {"shadow": True},
        {"perspective": True, "rotation": True},
        {"paper": "ruled", "shadow": True, "perspective": True, "rotation": True, "lighting": True},
    ],
    ids=["flat", "ruled", "squared", "shadow", "perspective", "all"],
)
def test_each_effect_keeps_truth_boxes_on_the_ink(digits, options):
    """Ink under each truth box is darker than the paper around it, and it fills the box."""
    for seed in range(3):
        page = page_for(digits, seed, 0.8, touching=False, **CLEAN, **options)
        grey = cv2.cvtColor(page.image, cv2.COLOR_BGR2GRAY)
        for d in all_truth(page):
            ink, paper, found = ink_box(grey, d.box)
            assert paper - ink > 40, (seed, d, ink, paper)
            # A threshold half-way between ink and paper recovers the truth box.
            assert iou_matrix([found], [d.box])[0, 0] > 0.8, (seed, d.box, found)


def test_noisy_pages_keep_ink_darker_than_paper(digits):
    for seed in range(3):
        page = page_for(digits, seed, 1.0, touching=False, shadow=True, perspective=True)
        grey = cv2.cvtColor(page.image, cv2.COLOR_BGR2GRAY)
        for d in all_truth(page):
            ink, paper, _ = ink_box(grey, d.box)
            assert paper - ink > 25, (seed, d, ink, paper)


def test_bad_options_are_user_errors(digits):
    with pytest.raises(DigitsJaxError, match="unknown page option"):
        page_for(digits, 0, colour="red")
    with pytest.raises(DigitsJaxError, match="difficulty"):
        page_for(digits, 0, 1.5)
    with pytest.raises(DigitsJaxError, match="paper"):
        page_for(digits, 0, paper="papyrus")
    with pytest.raises(DigitsJaxError, match="no ink"):
        generate_page(np.random.default_rng(0), np.zeros((5, 28, 28), np.uint8), np.zeros(5), 0.5)


def test_float_digits_accepted(digits):
    images, labels = digits
    a = page_for((images, labels), 5)
    b = page_for((images[..., None].astype(np.float32) / 255.0, labels), 5)
    assert a.text() == b.text()
    assert [d.box for d in all_truth(a)] == [d.box for d in all_truth(b)]


def test_save_page_writes_jpeg_and_truth_json(digits, tmp_path):
    page = page_for(digits, 6, n_lines=2)
    jpg, truth = save_page(page, tmp_path / "p.jpg", quality=85)
    data = json.loads(truth.read_text())
    assert data["text"] == page.text()
    assert [[d["label"] for d in line] for line in data["lines"]] == [
        [d.label for d in line] for line in page.lines
    ]
    assert [tuple(d["box"]) for line in data["lines"] for d in line] == [
        d.box for d in all_truth(page)
    ]
    assert cv2.imread(str(jpg)).shape == page.image.shape


def test_committed_sample_page_matches_its_truth():
    jpg = ROOT / "digits_jax" / "assets" / "sample_page.jpg"
    if not jpg.exists():
        pytest.skip("sample page not generated yet")
    data = json.loads(jpg.with_suffix(".json").read_text())
    img = cv2.imread(str(jpg))
    assert jpg.stat().st_size < 400_000
    assert data["text"] == "|".join(
        "".join(str(d["label"]) for d in line) for line in data["lines"]
    )
    h, w = img.shape[:2]
    for line in data["lines"]:
        for d in line:
            x, y, bw, bh = d["box"]
            assert x >= 0 and x + bw <= w and y >= 0 and y + bh <= h


# ---------------------------------------------------------------------------------------------
# scripts/measure_extraction.py


@pytest.fixture(scope="module")
def measure():
    path = ROOT / "scripts" / "measure_extraction.py"
    spec = importlib.util.spec_from_file_location("measure_extraction", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["measure_extraction"] = module
    spec.loader.exec_module(module)
    return module


def test_matching_is_one_to_one_at_iou_half(measure):
    truth = [(0, 0, 10, 20), (12, 0, 10, 20)]
    pred = [(0, 0, 10, 20), (1, 0, 10, 20), (40, 0, 10, 20)]
    pairs = measure.match_boxes(truth, pred)
    assert sorted(t for t, _ in pairs) == [0]  # the second truth box overlaps nothing enough
    assert len({p for _, p in pairs}) == len(pairs)
    assert measure.match_boxes(truth, []) == []


def test_perfect_predictions_score_perfectly(measure, digits):
    page = page_for(digits, 2, 0.5)
    pred = [[measure._Box(d.box) for d in line] for line in page.lines]
    result = measure.score_page(0, 0.5, page, pred)
    assert result.found == result.truth and not result.spurious and result.right_lines
    shifted = [
        [measure._Box((d.box[0], d.box[1] + 10_000, *d.box[2:])) for d in line]
        for line in page.lines
    ]
    result = measure.score_page(0, 0.5, page, [*shifted[:-1], shifted[-1] + shifted[-1][:1]])
    assert result.found == 0 and not result.right_lines
    summary = measure.summarise([result])
    assert summary["found_pct"] == 0.0 and summary["spurious_pct"] == 100.0


def test_measure_script_runs_end_to_end(measure, tmp_path, capsys):
    args = ["--pages", "3", "--seed", "1", "--json", "--quiet", "--buckets", "2"]
    args += ["--stand-in-extractor", "--stand-in-digits", "--save-failures", str(tmp_path)]
    assert measure.main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["overall"]["pages"] == 3 and len(report["buckets"]) == 2
    assert sum(b["pages"] for b in report["buckets"]) == 3
    assert 0 <= report["overall"]["found_pct"] <= 100
    for img in tmp_path.glob("*.jpg"):
        assert cv2.imread(str(img)) is not None


@pytest.mark.slow
def test_sample_page_is_reproducible_from_mnist(tmp_path):
    """The committed sample is exactly what the documented command regenerates."""
    from digits_jax import synthetic_pages

    committed = ROOT / "digits_jax" / "assets" / "sample_page.jpg"
    try:
        synthetic_pages.load_mnist_test()
    except DigitsJaxError as exc:
        pytest.skip(f"MNIST not available: {exc}")
    out = tmp_path / "sample_page.jpg"
    assert synthetic_pages.main(["--out", str(out), "--seed", "7"]) == 0
    assert out.with_suffix(".json").read_text() == committed.with_suffix(".json").read_text()
    diff = cv2.absdiff(cv2.imread(str(out)), cv2.imread(str(committed)))
    assert float(diff.mean()) < 0.5


class _Read(NamedTuple):
    box: tuple[int, int, int, int]
    digit: int


def test_measure_script_with_a_model_scores_the_reading(
    measure, digits, reader_model, tmp_path, capsys
):
    page = page_for(digits, 3, 0.3)
    read = [[_Read(d.box, d.label) for d in line] for line in page.lines]
    assert measure.score_page(0, 0.3, page, read, reads=True).errors == 0
    read[0][0] = _Read(read[0][0].box, (read[0][0].digit + 1) % 10)  # one digit misread
    assert measure.score_page(0, 0.3, page, read, reads=True).errors == 1
    assert measure.score_page(0, 0.3, page, [], reads=True).errors == len(all_truth(page))
    assert measure.score_page(0, 0.3, page, read).errors is None  # boxes only
    args = ["--pages", "2", "--seed", "1", "--json", "--quiet", "--buckets", "1"]
    assert measure.main([*args, "--model", str(reader_model[0])]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["extractor"] == f"digits-jax read --model {reader_model[0]}"
    # Two easy pages and a model trained for three epochs: nearly every digit read right.
    assert 85.0 <= report["overall"]["digit_accuracy_pct"] <= 100.0
    assert measure.main([*args, "--model", str(tmp_path / "none")]) == 2
    # With --tta N, what `read --tta N` reports; TTA needs a model.
    one_page = ["--pages", "1", "--seed", "1", "--json", "--quiet", "--buckets", "1"]
    assert measure.main([*one_page, "--tta", "2", "--model", str(reader_model[0])]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["extractor"].endswith("--tta 2") and report["overall"]["pages"] == 1
    with pytest.raises(SystemExit) as exc:
        measure.main(["--tta", "2"])
    assert exc.value.code == 2 and "--tta needs --model" in capsys.readouterr().err


@dataclass
class _Alt:
    box: tuple[int, int, int, int]
    splits: list[tuple[Any, Any]] | None = None
    joined: Any = None
    recuts: list[tuple[Any, Any]] | None = None


def test_oracle_takes_the_alternatives_that_match_the_truth(measure):
    truth = [(0, 0, 10, 20), (10, 0, 10, 20), (40, 0, 10, 20), (70, 0, 12, 20)]
    # A fused pair: its second cut is the true one, its first is not.
    wrong = (_Alt((0, 0, 4, 20)), _Alt((4, 0, 16, 20)))
    pair = _Alt((0, 0, 20, 20), splits=[wrong, (_Alt((0, 0, 10, 20)), _Alt((10, 0, 10, 20)))])
    # A digit in two pieces whose union is the digit; a digit whose cut would lose it.
    piece = _Alt((40, 0, 5, 20), joined=_Alt((40, 0, 10, 20)))
    single = _Alt((70, 0, 12, 20), splits=[(_Alt((70, 0, 6, 20)), _Alt((76, 0, 6, 20)))])
    lines = [[pair, piece, _Alt((45, 0, 5, 20)), single]]
    boxes = [[d.box for d in line] for line in measure.oracle_lines(lines, truth)]
    assert boxes == [[(0, 0, 10, 20), (10, 0, 10, 20), (40, 0, 10, 20), (70, 0, 12, 20)]]
    # A hard cut made at the wrong place, whose union has the right cut among its re-cuts.
    truth += [(100, 0, 10, 20), (110, 0, 10, 20)]
    recut = (_Alt((100, 0, 10, 20)), _Alt((110, 0, 10, 20)))
    hard = [_Alt((100, 0, 4, 20), recuts=[(_Alt((100, 0, 17, 20)), _Alt((117, 0, 3, 20))), recut])]
    hard.append(_Alt((104, 0, 16, 20)))
    boxes = [[d.box for d in line] for line in measure.oracle_lines([hard], truth)]
    assert boxes == [[(100, 0, 10, 20), (110, 0, 10, 20)]]
    # Extraction's own boxes are kept where no alternative does better.
    plain = [[_Alt(b) for b in truth[:2]]]
    assert measure.oracle_lines(plain, truth) == plain


def test_measure_script_oracle_needs_no_model(measure, capsys):
    args = ["--pages", "1", "--seed", "3", "--json", "--quiet", "--buckets", "1"]
    assert measure.main([*args, "--stand-in-digits", "--oracle"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert "--oracle" in report["extractor"]
    with pytest.raises(SystemExit):
        measure.main([*args, "--oracle", "--stand-in-extractor"])
