"""The rules that decide extraction's alternatives when ``read`` reads a page.

Ink alone cannot tell two fused digits from one wide digit, nor a digit's detached bar
from a digit of its own; the model's outputs can, together with the geometry and the
crop verifier's calls (``verifier``: one whole digit, two, or a part?) and the
two-digit reader's odds (``pair_reader``: one digit, or an ordered pair?). The two
pieces of a hard cut between touching digits may be replaced by their union cut
elsewhere (``RECUT_MARGIN`` on ``cut_scores``); then a wide blob may be taken as the two
pieces of its best cut (``SPLIT``), two neighbours on a line as one digit (``JOIN``), and
once those are decided, a box much shorter than its line's digits, most often the part
of a digit whose other strokes were too faint to extract, is dropped (``DROP``). Each
rule is a logistic regression on a few such inputs (``split_inputs``, ``join_inputs``,
``drop_inputs``) whose weights and threshold were fitted on the
candidates of generated pages of MNIST *training* digits, labelled by the truth, by
``scripts/fit_decision_rules.py``. The threshold maximises the digits found minus the
spurious boxes, on scores each candidate got from a fit that had not seen it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Rule:
    """Take the alternative where inputs . weights + bias >= 0 (threshold folded in)."""

    weights: tuple[float, ...]
    bias: float

    def take(self, x: np.ndarray) -> np.ndarray:
        """Whether each row of inputs (N, len(weights)) takes the alternative."""
        w = np.asarray(self.weights, np.float64)
        return np.asarray(x, np.float64).reshape(-1, len(w)) @ w + self.bias >= 0.0


# Blobs the detector gives less than MIN_PAIR are never split (nor fitted on), unless
# the two-digit reader's log odds of a pair reach MIN_ODDS (p(pair) 0.88). Stop 36, on
# the blobs of 600 and 400 fitting pages (seeds 1000 and 3000; each rule fitted on one
# set, scored on the other): the reader's gate at 2 added 2 and 7 digits net; at 3, 3
# and 6; at 0, 2 and 6 (docs/reading_history.md, "Stop 36").
MIN_PAIR = 0.2
MIN_ODDS = 2.0
# From `python scripts/fit_decision_rules.py --model workdirs/classifier --pages 1200`,
# one weight per input in ``split_inputs``, ``join_inputs`` and ``drop_inputs`` order
# (SPLIT refitted at stop 26 with the crop verifier's calls among its inputs, SPLIT and
# JOIN at stop 35 with the two-digit reader's odds, SPLIT at stop 36 on the blobs the
# reader's gate and the re-cut pieces' own cuts add; DROP as fitted at stop 19).
SPLIT = Rule(
    (
        0.1,  # logit p(two digits), whole
        -0.282,  # logit confidence, whole
        0.227,  # logit confidence, less sure piece
        0.199,  # logit confidence, surer piece
        0.511,  # width / line's median width
        -0.294,  # width / height
        0.106,  # (width / line's median width, at most 3) squared
        7.732,  # shorter piece's height / line's median height
        -0.23,  # logit verifier's p(whole digit), whole
        0.22,  # logit verifier's p(two digits), whole
        -0.273,  # logit verifier's p(part), whole
        0.094,  # logit verifier's p(whole digit), left piece
        -0.116,  # logit verifier's p(two digits), left piece
        -0.017,  # logit verifier's p(part), left piece
        0.082,  # logit verifier's p(whole digit), right piece
        -0.23,  # logit verifier's p(two digits), right piece
        -0.064,  # logit verifier's p(part), right piece
        0.22,  # two-digit reader's log odds of a pair, whole
    ),
    -12.828,
)
JOIN = Rule(
    (
        -0.029,  # logit p(two digits): union
        -0.013,  # left
        0.004,  # right
        0.082,  # logit confidence: union
        -0.039,  # left
        -0.037,  # right
        -2.167,  # gap / line's median height
        -0.074,  # union's width / line's median width
        3.476,  # union's height / line's median height
        -4.01,  # shorter one's height / line's median height
        -5.003,  # taller one's height / line's median height
        0.363,  # narrower one's width / line's median width
        -0.128,  # union's width / height
        3.336,  # rows shared / shorter one's height
        -0.21,  # union read as the left one's digit
        -0.197,  # union read as the right one's digit
        -0.147,  # two-digit reader's log odds of a pair, union
    ),
    2.038,
)
# Boxes shorter than this fraction of their line's median height (as decided) are judged
# by DROP; lines of one box never are.
SHORT = 0.75
DROP = Rule(
    (
        -12.026,  # height / line's median height
        -2.514,  # width / line's median width
        -0.197,  # logit confidence
    ),
    9.855,
)
# A wide blob's cut is chosen before the split rule judges it: the one whose less sure
# piece is surest, less CUT_PAIR times the detector's surer call that a piece is itself
# two digits, plus CUT_HEIGHT times the shorter piece's height over the line's median
# (``cut_scores``). Chosen on cuts of 400 fitting pages and of seed 3's (the right cut
# missed on 4 -> 2 and 8 -> 5 blobs there), among eight such mixes.
CUT_PAIR = 0.3
CUT_HEIGHT = 3.0
# Plus CUT_WHOLE times the mean logit of the crop verifier's p(whole digit) of the pieces:
# the classifier reads a cut-off stroke surely, the verifier was trained on such pieces.
# Stop 33, on the cuts of 600 fitting pages (seed 1000) and of 600 of the verifier's own
# (seed 2000): the re-cuts taken lost 33 / 24 digits against the truth's choice, 22 / 14
# with it (harmed pairs 7 / 4 -> 7 / 3), the wide blobs' chosen cuts 19 / 14 -> 14 / 12;
# 0.5-2 gave about the same (docs/reading_history.md, "Stop 33").
CUT_WHOLE = 1.0
# The two pieces of a hard cut between touching digits are replaced by the best re-cut of
# their union (by ``cut_scores``) where its score beats theirs by this much. Chosen on the
# 608 hard cuts of 600 fitting pages: margins from -1 to 3 gained 32-35 digits, 3 harmed
# fewest pairs (4, against 18 at 0); docs/reading_history.md, "Stop 25".
RECUT_MARGIN = 3.0
SPLIT_INPUTS = len(SPLIT.weights)
JOIN_INPUTS = len(JOIN.weights)
DROP_INPUTS = len(DROP.weights)


def _logits(p: np.ndarray) -> np.ndarray:
    """log(p / (1 - p)) of each probability, clipped to [1e-7, 1 - 1e-7] (finite)."""
    p = np.clip(np.asarray(p, np.float64), 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def _logit(p: float) -> float:
    return float(_logits(p))


def split_inputs(
    pair: float,
    whole: np.ndarray,
    pieces: np.ndarray,
    rel_width: float,
    aspect: float,
    piece_height: float,
    verdicts: np.ndarray,
    reader_odds: float,
) -> np.ndarray:
    """The split rule's inputs for one blob: the detector's p(two digits) of the whole,
    the classifier's probabilities (10,) of the whole and (2, 10) of its cut's pieces,
    the blob's width over its line's median width, its width over its height, the
    shorter piece's height over the line's median height (a crop is scaled to 20 px, so
    only this tells a partial digit, cut off a whole one, from a small digit), and the
    crop verifier's p(whole digit, two digits, part of a digit) (3, 3) of the whole and
    of the left and the right piece (``verifier``), and the two-digit reader's log odds
    of a pair against a single digit for the whole (``pair_reader.pair_odds``)."""
    sure = np.max(pieces, axis=1)
    return np.array(
        [
            _logit(pair),
            _logit(np.max(whole)),
            _logit(sure.min()),
            _logit(sure.max()),
            rel_width,
            aspect,
            min(rel_width, 3.0) ** 2,
            piece_height,
            *_logits(verdicts).ravel(),
            reader_odds,
        ]
    )


def cut_scores(
    pieces: np.ndarray, pairs: np.ndarray, heights: np.ndarray, wholes: np.ndarray
) -> np.ndarray:
    """How likely each of a blob's cuts is the right one: the classifier's probabilities
    (C, 2, 10) of each cut's pieces, the detector's p(two digits) (C, 2) of each piece,
    each cut's shorter piece's height over its line's median height (C,) and the crop
    verifier's p(whole digit) (C, 2) of each piece. Pieces read surely, each one whole
    digit and of a digit's height make a right cut."""
    sure = np.asarray(pieces).max(axis=2).min(axis=1)
    return (
        _logits(sure)
        - CUT_PAIR * _logits(np.asarray(pairs).max(axis=1))
        + CUT_HEIGHT * heights
        + CUT_WHOLE * _logits(wholes).reshape(-1, 2).mean(axis=1)
    )


Box = Sequence[int]


def join_inputs(
    pairs: Sequence[float],
    probs: Sequence[np.ndarray],
    boxes: Sequence[Box],
    line_size: tuple[float, float],
    reader_odds: float,
) -> np.ndarray:
    """The join rule's inputs for two neighbours and their union: the detector's
    p(two digits) and the classifier's probabilities (10,) of the union, the left and
    the right one (in that order in each sequence), their boxes (x, y, w, h), the
    line's median digit (width, height), and the two-digit reader's log odds of a pair
    against a single digit for the union (``pair_reader.pair_odds``)."""
    (_, _, uw, uh), (lx, ly, lw, lh), (rx, ry, rw, rh) = boxes
    width, height = line_size
    union, left, right = (np.asarray(p) for p in probs)
    overlap = max(0, min(ly + lh, ry + rh) - max(ly, ry)) / max(1, min(lh, rh))
    return np.array(
        [
            *(_logit(p) for p in pairs),
            *(_logit(np.max(p)) for p in (union, left, right)),
            (rx - lx - lw) / height,  # the gap between them
            uw / width,
            uh / height,
            min(lh, rh) / height,
            max(lh, rh) / height,
            min(lw, rw) / width,
            uw / max(uh, 1),
            overlap,  # of their rows, over the shorter one's height
            float(np.argmax(union) == np.argmax(left)),
            float(np.argmax(union) == np.argmax(right)),
            reader_odds,
        ]
    )


def drop_inputs(probs: np.ndarray, box: Box, line_size: tuple[float, float]) -> np.ndarray:
    """The drop rule's inputs for a short box: its height and width over its line's
    median digit (width, height), and the classifier's confidence (``probs``: (10,))."""
    _, _, w, h = box
    width, height = line_size
    return np.array([h / height, w / width, _logit(np.max(probs))])


def split_value(gain: np.ndarray) -> np.ndarray:
    """Digits found minus spurious boxes that a split adds, where its pieces match
    ``gain`` more true digits than the whole: one box more."""
    return 2.0 * np.asarray(gain, np.float64) - 1.0


def join_value(gain: np.ndarray) -> np.ndarray:
    """Digits found minus spurious boxes that a join adds, where the union matches
    ``gain`` more true digits than the two: one box fewer."""
    return 2.0 * np.asarray(gain, np.float64) + 1.0


def drop_value(gain: np.ndarray) -> np.ndarray:
    """Digits found minus spurious boxes that dropping a box adds: ``gain`` is -1 where
    the box matched a true digit, else 0; one box fewer, as for a join."""
    return join_value(gain)


def best_threshold(score: np.ndarray, value: np.ndarray) -> float:
    """The score from which taking the alternatives gains the most ``value`` (inf when
    no threshold gains anything; the fewer taken on a tie)."""
    order = np.argsort(-score, kind="stable")
    net = np.cumsum(value[order])
    k = int(np.argmax(net))
    return float(score[order[k]]) if net[k] > 0 else np.inf


def _weights(x: np.ndarray, value: np.ndarray) -> tuple[np.ndarray, float]:
    """(weights, bias) of the regression for value > 0, on the raw inputs."""
    from digits_jax.pair_detector import fit_logistic  # (JAX: fitting only)

    return fit_logistic(x, (value > 0).astype(np.float64))


def fit(x: np.ndarray, value: np.ndarray, folds: int = 5) -> Rule:
    """The rule for candidates with inputs ``x`` (N, D) whose alternative, taken, adds
    ``value`` (``split_value``, ``join_value``). The threshold, folded into the bias, is
    chosen on out-of-fold scores: on the candidates it was fitted on, a regression looks
    surer than it is. Nothing to gain anywhere, or fewer candidates than folds (each
    fold's fit needs some): a rule that never takes one."""
    never = Rule((0.0,) * x.shape[1], -1.0)
    if not np.any(value > 0) or len(value) < folds:
        return never
    fold = np.arange(len(value)) % folds
    held_out = np.zeros(len(value))
    for k in range(folds):
        weights, bias = _weights(x[fold != k], value[fold != k])
        held_out[fold == k] = x[fold == k] @ weights + bias
    threshold = best_threshold(held_out, value)
    if not np.isfinite(threshold):
        return never
    weights, bias = _weights(x, value)
    return Rule(tuple(round(float(w), 3) for w in weights), round(bias - threshold, 3))
