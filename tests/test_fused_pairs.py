import json

import numpy as np

from digits_jax import fused_pairs


def _digit(x0: int, x1: int) -> np.ndarray:
    """A '0'-like glyph: two strokes, ink box columns x0 to x1 - 1, rows 4 to 23."""
    d = np.zeros((28, 28), np.uint8)
    d[4:24, [x0, x1 - 1]] = 255
    return d


def test_fuse_overlaps_the_ink_boxes_by_the_asked_fraction():
    left, right = _digit(10, 20), _digit(12, 18)  # ink 10 and 6 wide, 20 tall
    fused = fused_pairs.fuse(left, right, overlap=0.5, scale=1.0, dy=0.0)
    assert fused.shape == (20, 10 + 6 - 3)
    assert fused.max() == 1.0 and fused.min() == 0.0
    # The right glyph's strokes land 7 and 12 columns in: its left stroke inside the left one's.
    np.testing.assert_array_equal(np.flatnonzero(fused.any(axis=0)), [0, 7, 9, 12])
    # Shifted down by a tenth of the left digit's height: the canvas grows to fit.
    assert fused_pairs.fuse(left, right, 0.0, 1.0, 0.1).shape == (22, 16)
    assert fused_pairs.fuse(left, right, 0.0, 1.0, -0.1).shape == (22, 16)


def test_pairs_and_singles_are_mnist_crops_and_pairs_are_wider():
    rng = np.random.default_rng(0)
    digits = np.stack([_digit(11, 17), _digit(9, 19)])
    pairs, singles = fused_pairs.pairs_and_singles(rng, digits, 6)
    for crops in (pairs, singles):
        assert crops.shape == (6, 28, 28) and crops.dtype == np.float32
        assert crops.min() >= 0.0 and crops.max() <= 1.0
    width = lambda c: np.flatnonzero(c.max(axis=0) > 0.5).size  # noqa: E731
    # Normalised to 20 px on the longer side, a pair spans more columns than one bar.
    assert min(width(p) for p in pairs) > max(width(s) for s in singles)
    again, _ = fused_pairs.pairs_and_singles(np.random.default_rng(0), digits, 6)
    np.testing.assert_array_equal(again, pairs)


def test_probe_pair_detector_script(reader_model, capsys, import_script):
    probe = import_script("probe_pair_detector")
    workdir, _ = reader_model
    argv = ["--model", str(workdir), "--pages", "3", "--examples", "300", "--json"]
    assert probe.main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    # The head separates synthetic pairs from single digits on its own training data.
    assert report["train_accuracy"] > 0.9
    counts = report["blobs"]
    assert counts["single"] > 0
    flagged = [report["flagged"][str(t)] for t in probe.THRESHOLDS]
    for kind in ("pair", "single"):
        per_threshold = [f[kind] for f in flagged]
        assert all(0 <= n <= counts[kind] for n in per_threshold)
        assert per_threshold == sorted(per_threshold, reverse=True)
    assert probe.main(["--model", str(workdir / "missing"), "--pages", "1"]) == 2


def test_labelled_pairs_and_singles_number_each_pair_by_its_digits():
    digits = np.stack([_digit(11, 17), _digit(9, 19), _digit(12, 16)])
    labels = np.array([4, 7, 1], np.int32)
    crops, classes = fused_pairs.labelled_pairs_and_singles(
        np.random.default_rng(0), digits, labels, 5
    )
    assert crops.shape == (8, 28, 28) and crops.dtype == np.uint8 and classes.dtype == np.int32
    # Five pairs first, each class 10 + 10 * left + right of two of the labels, then
    # each digit alone as its own label.
    assert all(c - 10 in {10 * a + b for a in labels for b in labels} for c in classes[:5])
    np.testing.assert_array_equal(classes[5:], labels)
    assert fused_pairs.pair_class(7, 4) == 84
    again, same = fused_pairs.labelled_pairs_and_singles(
        np.random.default_rng(0), digits, labels, 5
    )
    np.testing.assert_array_equal(again, crops)
    np.testing.assert_array_equal(same, classes)
