"""A two-digit reader: reads a crop as one digit or as an ordered pair of fused digits.

Whether a wide blob is two touching digits is the question the split and join rules
lose most digits on. The pair detector answers it from the classifier's features,
learned to read one digit, and the crop verifier from three calls; this network is the
classifier's, trained end to end to read the crop itself as one of ten digits or one of
a hundred ordered pairs, on synthetic fused pairs of MNIST training digits
(``fused_pairs``) and the digits alone. Its odds of a pair against a single digit
(``pair_odds``) are an input of ``decision_rules.SPLIT`` and ``JOIN``. It ships with the
package (``assets/pair_reader.npz``), trained by ``scripts/train_pair_reader.py``, and
runs through the classifier's NumPy forward pass: reading imports no JAX.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from digits_jax import verifier

SINGLES = 10
CLASSES = SINGLES + SINGLES * SINGLES  # ``fused_pairs.pair_class`` numbers the pairs
ASSET = Path(__file__).parent / "assets" / "pair_reader.npz"


@functools.cache
def load(path: str | Path = ASSET) -> dict[str, Any]:
    """The reader's parameters (a ``models.Classifier`` tree with ``CLASSES`` outputs)."""
    return verifier.load_network(path, CLASSES, "two-digit reader")


def probabilities(crops: np.ndarray, params: dict[str, Any] | None = None) -> np.ndarray:
    """p(each single digit, then each ordered pair) (N, ``CLASSES``) of 28x28 crops (N,
    28, 28) in [0, 1]."""
    params = load() if params is None else params
    return verifier.probabilities(np.reshape(crops, (-1, 28, 28)), params)


def pair_odds(crops: np.ndarray, params: dict[str, Any] | None = None) -> np.ndarray:
    """log(p(any pair) / p(any single digit)) (N,) of 28x28 crops in [0, 1]."""
    p = probabilities(crops, params)
    tiny = 1e-7
    return np.log(p[:, SINGLES:].sum(axis=1) + tiny) - np.log(p[:, :SINGLES].sum(axis=1) + tiny)
