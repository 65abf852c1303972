import numpy as np
import pytest

from digits_jax import calibration


def _overconfident(n=4000, seed=0):
    """A calibrated 90%-accurate classifier's logits, sharpened x4: over-confident by design."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    right = rng.random(n) < 0.9
    predicted = np.where(right, labels, (labels + rng.integers(1, 10, n)) % 10)
    logits = np.zeros((n, 10))
    logits[np.arange(n), predicted] = np.log(81.0)  # softmax confidence exactly 0.9
    return 4.0 * logits, labels


def test_fit_recovers_the_sharpening_and_lowers_ece():
    logits, labels = _overconfident()
    t = calibration.fit_temperature(logits, labels)
    assert t == pytest.approx(4.0, rel=0.05)
    before = calibration.expected_calibration_error(calibration.softmax(logits), labels)
    after = calibration.expected_calibration_error(calibration.softmax(logits, t), labels)
    assert before > 0.05 and after < 0.02
    # Temperature never changes a prediction.
    assert (calibration.softmax(logits, t).argmax(1) == logits.argmax(1)).all()


def test_fit_is_a_minimum():
    logits, labels = _overconfident(seed=1)
    t = calibration.fit_temperature(logits, labels)
    best = calibration.nll(logits, labels, t)
    for other in (t * 0.9, t * 1.1):
        assert calibration.nll(logits, labels, other) >= best - 1e-9


def test_ece_extremes():
    labels = np.array([0, 1, 2, 3])
    perfect = np.eye(10)[labels]
    assert calibration.expected_calibration_error(perfect, labels) == pytest.approx(0.0)
    wrong = np.eye(10)[(labels + 1) % 10]
    assert calibration.expected_calibration_error(wrong, labels) == pytest.approx(1.0)
    assert calibration.fit_temperature(np.zeros((0, 10)), np.zeros(0, int)) == 1.0
