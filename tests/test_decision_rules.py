"""The decision rules: their inputs, their fit and out-of-fold threshold, and the script
that fits them."""

import json
import warnings

import numpy as np
import pytest

from digits_jax import decision_rules as rules
from digits_jax import inference
from digits_jax.errors import DigitsJaxError


def _candidates(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split inputs whose first and fifth columns decide whether a cut finds a digit more
    (gain 1) or loses one (gain -1); most blobs are single digits (gain 0)."""
    rng = np.random.default_rng(seed)
    scale = np.array([3, 2, 2, 2, 0.3, 0.2, 1, 0.2, *[2] * 9, 3])
    offset = np.array([0, 4, 4, 6, 1, 0.6, 1, 0.9, *[0] * 9, -2])
    x = rng.normal(size=(n, rules.SPLIT_INPUTS)) * scale + offset
    signal = x[:, 0] / 3 + (x[:, 4] - 1) / 0.3
    gain = np.where(signal > 2.0, 1.0, np.where(signal > 1.5, -1.0, 0.0))
    return x, gain


def test_fit_takes_what_helps_with_an_out_of_fold_threshold():
    x, gain = _candidates(4000, 0)
    rule = rules.fit(x, rules.split_value(gain))
    assert len(rule.weights) == rules.SPLIT_INPUTS
    test_x, test_gain = _candidates(4000, 1)
    take = rule.take(test_x)
    assert np.mean(take[test_gain > 0]) > 0.8
    assert np.mean(take[test_gain < 0]) < 0.3
    assert np.mean(take[test_gain == 0]) < 0.01
    # The threshold maximises digits found minus spurious boxes: shifted either way it
    # does no better on new candidates.
    value = rules.split_value(test_gain)
    score = test_x @ np.array(rule.weights) + rule.bias
    assert value[take].sum() >= max(value[score >= 1.0].sum(), value[score >= -1.0].sum())
    # Nothing to gain: a rule that never takes one.
    never = rules.fit(x, rules.split_value(np.minimum(gain, 0.0)))
    assert not never.take(x).any()
    # Fewer candidates than folds: nothing to choose a threshold on (a lone candidate
    # left its fold nothing to fit, which warned and gave NaN scores).
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for n in (1, 3):
            assert not rules.fit(x[:n], np.array([1.0, -1.0, -1.0])[:n]).take(x).any()


def test_values_count_found_digits_against_spurious_boxes():
    # A split whose pieces find one more digit: +1 found, no box left over; one that
    # finds none: a spurious box. A join whose union finds as many: one box fewer.
    np.testing.assert_array_equal(rules.split_value(np.array([1, 0, -1])), [1, -1, -3])
    np.testing.assert_array_equal(rules.join_value(np.array([1, 0, -1, -2])), [3, 1, -1, -3])
    # Dropping a box that matched no true digit: one spurious box fewer; one that did:
    # one digit found fewer.
    np.testing.assert_array_equal(rules.drop_value(np.array([0, -1])), [1, -1])
    score = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    # Down to 3.0: net 1, as at 5.0: the fewer taken win a tie.
    assert rules.best_threshold(score, np.array([1.0, -1, 1, -1, -1])) == 5.0
    assert rules.best_threshold(score, np.array([1.0, -1, 1, 1, -1])) == 2.0
    assert rules.best_threshold(score, np.array([-1.0, -3, -1, -1, -1])) == np.inf


# The crop verifier's p(whole digit, two digits, part) of a blob and its cut's two pieces:
# two digits cut into whole ones; one digit cut into parts.
TWO_CUT = np.array([[0.1, 0.8, 0.1], [0.9, 0.05, 0.05], [0.85, 0.05, 0.1]])
ONE_CUT = np.array([[0.9, 0.05, 0.05], [0.1, 0.05, 0.85], [0.2, 0.05, 0.75]])


def test_split_inputs_and_the_fitted_rule():
    whole = np.full(10, 0.01)
    whole[3] = 0.91
    pieces = np.full((2, 10), 0.0)
    pieces[0, 1], pieces[1, 7] = 1.0, 0.9  # a sure piece's logit is clipped, not infinite
    x = rules.split_inputs(
        0.8, whole, pieces, 1.6, 1.1, piece_height=0.9, verdicts=TWO_CUT, reader_odds=2.5
    )
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    np.testing.assert_allclose(x[[0, 1, 2]], [logit(0.8), logit(0.91), logit(0.9)])
    assert np.isfinite(x).all() and x[3] > 15 and list(x[4:8]) == [1.6, 1.1, 1.6**2, 0.9]
    np.testing.assert_allclose(x[8:17], logit(TWO_CUT).ravel())
    assert x[17] == 2.5
    assert x.shape == (rules.SPLIT_INPUTS,)
    assert rules.SPLIT.take(np.zeros((0, rules.SPLIT_INPUTS))).shape == (0,)
    # The fitted rule: a blob twice its line's width that the detector calls two, read
    # surely in both pieces of a digit's height, that the verifier calls whole pieces,
    # is split; a blob of a single digit's width read surely whole is not.
    pair = rules.split_inputs(
        0.999, whole, np.eye(10)[[1, 7]] * 0.999, 2.0, 1.3, 0.95, TWO_CUT, 4.0
    )
    sure = np.eye(10)[3] * 0.999
    single = rules.split_inputs(0.3, sure, np.eye(10)[[1, 7]] * 0.6, 1.0, 0.7, 0.7, ONE_CUT, -6.0)
    assert list(rules.SPLIT.take(np.stack([pair, single]))) == [True, False]
    # The verifier's calls weigh: the same two pieces called parts tip the blob back.
    parts = rules.split_inputs(0.999, whole, np.eye(10)[[1, 7]] * 0.99, 1.8, 1.0, 0.9, TWO_CUT, 4.0)
    called_parts = parts.copy()
    called_parts[8:17] = np.log(ONE_CUT / (1 - ONE_CUT)).ravel()
    assert list(rules.SPLIT.take(np.stack([parts, called_parts]))) == [True, False]


def test_cut_scores_prefer_sure_single_pieces_of_a_digits_height():
    sure, unsure = np.eye(10)[[1, 7]] * 0.999, np.eye(10)[[1, 7]] * 0.9
    pieces = np.stack([sure, unsure, sure, sure])
    single, pair = [0.01, 0.01], [0.01, 0.99]
    pairs = np.array([single, single, pair, single, single])
    heights = np.array([0.9, 0.9, 0.9, 0.5, 0.9])
    wholes = np.array([[0.9, 0.8]] * 4 + [[0.9, 0.1]])
    scores = rules.cut_scores(np.concatenate([pieces, sure[None]]), pairs, heights, wholes)
    # Surer pieces score higher; so does a cut none of whose pieces looks like two
    # digits, one whose shorter piece is nearer the line's digit height, and one whose
    # pieces the crop verifier calls whole digits (a surely read stroke cut off a digit
    # is not one).
    assert scores[0] > max(scores[1:])
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    verified = rules.CUT_WHOLE * (logit(0.9) + logit(0.8)) / 2
    expected = logit(0.999) - rules.CUT_PAIR * logit(0.99) + rules.CUT_HEIGHT * 0.9 + verified
    np.testing.assert_allclose(scores[2], expected)
    empty = np.zeros((0, 2))
    assert rules.cut_scores(pieces[:0], empty, np.zeros(0), empty).shape == (0,)


def _join(union_pair, union, boxes, left=(1, 0.6), right=(7, 0.6), odds=-5.0):
    """Join inputs for a union read as ``union`` (digit, confidence) beside two
    neighbours read as ``left`` and ``right``, on a line of 20 x 40 digits, that the
    two-digit reader gives ``odds`` of being a pair."""
    probs = []
    for digit, sure in (union, left, right):
        p = np.full(10, (1 - sure) / 9)
        p[digit] = sure
        probs.append(p)
    return rules.join_inputs([union_pair, 0.3, 0.3], probs, boxes, (20.0, 40.0), odds)


def test_join_inputs_and_the_fitted_rule():
    # A 5 whose bar lies a little apart, to the upper right of its body.
    bar = [(100, 100, 24, 40), (100, 108, 16, 32), (114, 100, 10, 6)]
    x = _join(0.05, (5, 0.999), bar, left=(6, 0.6), right=(7, 0.3))
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    np.testing.assert_allclose(x[:6], [logit(p) for p in (0.05, 0.3, 0.3, 0.999, 0.6, 0.3)])
    # Gap (overlapping by 2 px), union width and height, the shorter and the taller
    # one's height, the narrower one's width, the union's aspect, the rows they share
    # over the shorter one's height, the union's class equal to the left's, the right's.
    expected = [-2 / 40, 24 / 20, 1.0, 6 / 40, 32 / 40, 10 / 20, 24 / 40, 0.0, 0.0, 0.0, -5.0]
    np.testing.assert_allclose(x[6:], expected)
    # The fitted rule joins such a bar to its digit, and keeps apart two digits of a
    # line's height side by side whose union the detector calls two.
    apart = [(100, 100, 40, 40), (100, 100, 20, 40), (120, 100, 20, 40)]
    two = _join(0.98, (0, 0.7), apart, left=(3, 0.99), right=(8, 0.99), odds=4.0)
    assert list(rules.JOIN.take(np.stack([x, two]))) == [True, False]


def test_drop_inputs_and_the_fitted_rule():
    probs = np.full(10, 0.3 / 9)
    probs[2] = 0.7
    # A box 12 x 14 on a line of 20 x 40 digits, read as a 2 with 0.7.
    x = rules.drop_inputs(probs, (5, 5, 12, 14), (20.0, 40.0))
    np.testing.assert_allclose(x, [14 / 40, 12 / 20, np.log(0.7 / 0.3)])
    # The fitted rule drops such a fragment, and keeps a box of 0.72 of its line's
    # height read surely.
    sure = np.eye(10)[2] * 0.999
    kept = rules.drop_inputs(sure, (5, 5, 16, 29), (20.0, 40.0))
    assert list(rules.DROP.take(np.stack([x, kept]))) == [True, False]


def test_fit_decision_rules_script(reader_model, capsys, import_script, tmp_path):
    script = import_script("fit_decision_rules")
    workdir, _ = reader_model
    saved = tmp_path / "candidates.npz"
    argv = ["--model", str(workdir), "--pages", "6", "--workers", "1", "--digits", "holdout"]
    assert script.main([*argv, "--save-candidates", str(saved)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["pages"] == 6
    with np.load(saved) as arrays:  # what the report counted, to fit other rules on
        for kind, inputs, value_of in (
            ("split", rules.SPLIT_INPUTS, rules.split_value),
            ("join", rules.JOIN_INPUTS, rules.join_value),
            ("drop", rules.DROP_INPUTS, rules.drop_value),
        ):
            x, gain = arrays[f"{kind}_x"], arrays[f"{kind}_gain"]
            assert x.shape == (report[kind]["candidates"], inputs) == (len(gain), inputs)
            assert int((value_of(gain) > 0).sum()) == report[kind]["helped_by_taking"]

    kinds = ("split", rules.SPLIT_INPUTS), ("join", rules.JOIN_INPUTS), ("drop", rules.DROP_INPUTS)
    for kind, inputs in kinds:
        fitted = report[kind]
        assert fitted["candidates"] >= fitted["helped_by_taking"] >= 0
        assert len(fitted["weights"]) == inputs
        # Taking every alternative that helps is the most any rule could gain here.
        best = fitted["every_one_that_helps"]
        assert best["taken"] == fitted["helped_by_taking"]
        for rule in ("fitted_rule", "current_rule"):
            net = fitted[rule]["found"] - fitted[rule]["spurious"]
            assert net <= best["found"] - best["spurious"]
    assert report["join"]["candidates"] > 0
    assert report["digits"] == "holdout"
    assert script.holdout_size(inference.load_classifier(workdir).meta) == 5000
    assert script.main(["--model", str(workdir / "missing"), "--pages", "1"]) == 2
    # A model that held nothing out: a one-line error pointing to --digits train.
    with pytest.raises(DigitsJaxError, match="use --digits train"):
        script.holdout_size({"config": {"holdout": 0}})
