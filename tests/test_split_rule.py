"""The split rule: its inputs, its fit and out-of-fold threshold, and the script that fits it."""

import importlib
import json
from pathlib import Path

import numpy as np

from digits_jax import split_rule


def _blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rule inputs whose first and fifth columns decide whether a cut finds a digit more
    (gain 1) or loses one (gain -1); most blobs are single digits (gain 0)."""
    rng = np.random.default_rng(seed)
    scale = np.array([3, 2, 2, 2, 0.3, 0.2, 1])
    offset = np.array([0, 4, 4, 6, 1, 0.6, 1])
    x = rng.normal(size=(n, split_rule.INPUTS)) * scale + offset
    signal = x[:, 0] / 3 + (x[:, 4] - 1) / 0.3
    gain = np.where(signal > 2.0, 1.0, np.where(signal > 1.5, -1.0, 0.0))
    return x, gain


def test_fit_splits_what_a_cut_fixes_with_an_out_of_fold_threshold():
    x, gain = _blobs(4000, 0)
    weights, bias = split_rule.fit(x, gain)
    assert weights.shape == (split_rule.INPUTS,)
    test_x, test_gain = _blobs(4000, 1)
    take = split_rule.split(test_x, weights, bias)
    assert np.mean(take[test_gain > 0]) > 0.8
    assert np.mean(take[test_gain < 0]) < 0.3
    assert np.mean(take[test_gain == 0]) < 0.01
    # The threshold maximises digits found minus splits that find none: shifted either
    # way it does no better on new blobs.
    net = lambda t: np.sum(test_gain[t]) - np.sum(test_gain[t] <= 0)  # noqa: E731
    score = test_x @ weights + bias
    assert net(take) >= max(net(score >= 1.0), net(score >= -1.0))
    # Nothing a cut fixes: a rule that never splits.
    weights, bias = split_rule.fit(x, np.minimum(gain, 0.0))
    assert not split_rule.split(x, weights, bias).any()


def test_best_threshold_counts_found_digits_against_wrong_splits():
    score = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    # Down to 3.0: 2 found, 1 wrong (net 1, as at 5.0: the fewer splits win a tie).
    assert split_rule.best_threshold(score, np.array([1.0, 0.0, 1.0, 0.0, 0.0])) == 5.0
    assert split_rule.best_threshold(score, np.array([1.0, 0.0, 1.0, 1.0, 0.0])) == 2.0
    assert split_rule.best_threshold(score, np.array([0.0, -1.0, 0.0, 0.0, 0.0])) == np.inf


def test_inputs_and_the_fitted_rule():
    whole = np.full(10, 0.01)
    whole[3] = 0.91
    pieces = np.full((2, 10), 0.0)
    pieces[0, 1], pieces[1, 7] = 1.0, 0.9  # a sure piece's logit is clipped, not infinite
    x = split_rule.inputs(0.8, whole, pieces, rel_width=1.6, aspect=1.1)
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    np.testing.assert_allclose(x[[0, 1, 2]], [logit(0.8), logit(0.91), logit(0.9)])
    assert np.isfinite(x).all() and x[3] > 15 and list(x[4:]) == [1.6, 1.1, 1.6**2]
    assert split_rule.split(np.zeros((0, split_rule.INPUTS))).shape == (0,)
    # The fitted rule: a blob twice its line's width that the detector calls two, read
    # surely in both pieces, is split; a blob of a single digit's width read surely whole
    # is not.
    pair = split_rule.inputs(0.999, whole, np.eye(10)[[1, 7]] * 0.999, 2.0, 1.3)
    single = split_rule.inputs(0.3, np.eye(10)[3] * 0.999, np.eye(10)[[1, 7]] * 0.6, 1.0, 0.7)
    assert list(split_rule.split(np.stack([pair, single]))) == [True, False]


def test_fit_split_rule_script(reader_model, capsys, monkeypatch):
    scripts = Path(__file__).resolve().parent.parent / "scripts"
    monkeypatch.syspath_prepend(str(scripts))
    script = importlib.import_module("fit_split_rule")
    workdir, _ = reader_model
    argv = ["--model", str(workdir), "--pages", "6", "--workers", "1"]
    assert script.main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["pages"] == 6 and report["blobs"] >= report["blobs_a_cut_fixes"] >= 0
    assert len(report["WEIGHTS"]) == split_rule.INPUTS
    # Taking every cut that helps is the most any rule could find on these blobs.
    best = report["every_cut_that_helps"]
    assert best["wrong"] == 0 and best["right"] == report["blobs_a_cut_fixes"]
    for rule in ("fitted_rule", "current_rule"):
        assert report[rule]["net_found"] <= best["net_found"]
    assert script.main(["--model", str(workdir / "missing"), "--pages", "1"]) == 2
