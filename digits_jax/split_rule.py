"""The rule that decides whether ``read`` takes a wide blob as two digits.

Ink alone cannot tell two fused digits from one wide digit; the model's outputs can,
together: the pair detector's call on the whole blob, how surely the classifier reads
the whole and each piece of the blob's best cut, and how wide the blob is for its line.
The rule is a logistic regression on seven such inputs (``inputs``) whose weights and
threshold were fitted on the wide blobs of generated pages of MNIST *training* digits,
labelled by the truth (does the cut find more true digits than the whole?), by
``scripts/fit_split_rule.py``; the threshold maximises digits found minus splits that
find none, on scores each blob got from a fit that had not seen it.
"""

from __future__ import annotations

import numpy as np

# Blobs the detector gives less than this are never split (nor fitted on).
MIN_PAIR = 0.2
# Weights of ``inputs`` and the bias, threshold folded in: split when the score >= 0.
# From `python scripts/fit_split_rule.py --model workdirs/classifier --pages 1200`.
WEIGHTS = (0.282, -0.311, 0.364, 0.256, 1.512, -0.238, -0.109)
BIAS = -6.178
INPUTS = len(WEIGHTS)


def _logit(p: float) -> float:
    p = min(max(float(p), 1e-7), 1 - 1e-7)
    return float(np.log(p / (1 - p)))


def inputs(
    pair: float, whole: np.ndarray, pieces: np.ndarray, rel_width: float, aspect: float
) -> np.ndarray:
    """The rule's inputs for one blob: the detector's p(two digits) of the whole, the
    classifier's probabilities (10,) of the whole and (2, 10) of its cut's pieces, the
    blob's width over its line's median width, and its width over its height."""
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
        ]
    )


def split(
    x: np.ndarray, weights: np.ndarray | None = None, bias: float | None = None
) -> np.ndarray:
    """Whether each row of inputs (N, INPUTS) is taken as two digits."""
    w = np.asarray(WEIGHTS if weights is None else weights, np.float64)
    b = BIAS if bias is None else bias
    return np.asarray(x, np.float64).reshape(-1, len(w)) @ w + b >= 0.0


def _weights(x: np.ndarray, gain: np.ndarray) -> tuple[np.ndarray, float]:
    """(weights, bias) of the regression for gain > 0, on the raw inputs."""
    from digits_jax.pair_detector import fit_logistic  # (JAX: fitting only)

    return fit_logistic(x, (gain > 0).astype(np.float64))


def best_threshold(score: np.ndarray, gain: np.ndarray) -> float:
    """The score from which splitting maximises digits found minus splits that find
    none (inf when no threshold gains anything)."""
    order = np.argsort(-score)
    net = np.cumsum(gain[order] - (gain[order] <= 0))
    k = int(np.argmax(net))
    return float(score[order[k]]) if net[k] > 0 else np.inf


def fit(x: np.ndarray, gain: np.ndarray, folds: int = 5) -> tuple[np.ndarray, float]:
    """(weights, bias) for blobs with inputs ``x`` (N, D) whose best cut finds ``gain``
    more true digits than the whole. The threshold, folded into the bias, is chosen on
    out-of-fold scores: on the blobs it was fitted on, a regression looks surer than it
    is. No gain anywhere: a rule that never splits."""
    if not np.any(gain > 0):
        return np.zeros(x.shape[1]), -1.0
    fold = np.arange(len(gain)) % folds
    held_out = np.zeros(len(gain))
    for k in range(folds):
        weights, bias = _weights(x[fold != k], gain[fold != k])
        held_out[fold == k] = x[fold == k] @ weights + bias
    threshold = best_threshold(held_out, gain)
    if not np.isfinite(threshold):
        return np.zeros(x.shape[1]), -1.0
    weights, bias = _weights(x, gain)
    return weights, bias - threshold
