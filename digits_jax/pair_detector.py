"""A "two digits" detector: tells a blob of two fused digits from one wide digit.

Ink alone cannot: two overlapping digits and a wide 0 are both one wide blob. The
classifier's encoder can, given a little help: a logistic head on its frozen 512
features, fitted after training on synthetic fused pairs of MNIST training digits
(``fused_pairs``) against single ones. It is stored beside the checkpoints
(``pair_detector.json``, tied to the epoch it was fitted on) and used by ``read`` to
accept or reject the alternative readings that extraction offers (a wide blob as two
digits, two neighbours as one; ``reading.resolve_alternatives``).
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from digits_jax import export

FILE = "pair_detector.json"
_FIT_STEPS = 500


@dataclass(frozen=True)
class PairDetector:
    """Logistic regression on encoder features: p(two digits) = sigmoid(x . kernel + bias)."""

    kernel: np.ndarray  # (512,)
    bias: float
    epoch: int  # the checkpoint whose encoder it was fitted on
    train_accuracy: float = 0.0

    def probability(self, features: np.ndarray) -> np.ndarray:
        z = np.asarray(features, np.float64) @ self.kernel + self.bias
        return 1.0 / (1.0 + np.exp(-z))

    def to_json(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "bias": self.bias,
            "train_accuracy": self.train_accuracy,
            "kernel": [float(v) for v in self.kernel],
        }


# Fitting runs on JAX; reading a page only loads a fitted detector and imports none of it.


@functools.cache
def _jitted_features() -> Callable:
    import jax

    from digits_jax import models

    @jax.jit
    def features(params: Any, images: jax.Array) -> jax.Array:
        z = models.Encoder(conv_impl="xla").apply({"params": params}, images)
        return z.reshape(z.shape[0], -1)

    return features


def encoder_features(encoder_params: Any, crops: np.ndarray, batch: int = 512) -> np.ndarray:
    """The 512 encoder features of (N, 28, 28) float crops in [0, 1], in padded batches."""
    from digits_jax import models

    crops = np.asarray(crops, np.float32).reshape(-1, 28, 28, 1)
    apply = functools.partial(_jitted_features(), encoder_params)
    return models.apply_in_batches(apply, crops, batch, width=512)


def fit_logistic(x: np.ndarray, y: np.ndarray, steps: int = _FIT_STEPS) -> tuple[np.ndarray, float]:
    """Logistic regression on standardised features (Adam, small L2), returned with the
    standardisation folded in: p = sigmoid(x . kernel + bias) on the raw features."""
    import jax
    import jax.numpy as jnp
    import optax

    mean, std = x.mean(0), x.std(0) + 1e-6
    xs, ys = jnp.asarray((x - mean) / std), jnp.asarray(y, jnp.float32)

    def loss(p: dict[str, jax.Array]) -> jax.Array:
        z = xs @ p["w"] + p["b"]
        return jnp.mean(optax.sigmoid_binary_cross_entropy(z, ys)) + 1e-4 * jnp.sum(p["w"] ** 2)

    opt = optax.adam(0.01)

    def step(carry: tuple, _: None) -> tuple:
        p, state = carry
        updates, state = opt.update(jax.grad(loss)(p), state, p)
        return (optax.apply_updates(p, updates), state), None

    p = {"w": jnp.zeros(x.shape[1]), "b": jnp.zeros(())}
    (p, _), _ = jax.jit(lambda c: jax.lax.scan(step, c, None, length=steps))((p, opt.init(p)))
    w = np.asarray(p["w"], np.float64) / std
    return w, float(p["b"]) - float(mean @ w)


def fit(
    encoder_params: Any, train_images: np.ndarray, examples: int, epoch: int, seed: int = 0
) -> PairDetector:
    """Fits the detector on ``examples`` fused pairs and as many singles of training digits."""
    from digits_jax import fused_pairs

    rng = np.random.default_rng([seed, 2])
    pairs, singles = fused_pairs.pairs_and_singles(rng, train_images, examples)
    x = encoder_features(encoder_params, np.concatenate([pairs, singles]))
    y = np.r_[np.ones(len(pairs)), np.zeros(len(singles))]
    kernel, bias = fit_logistic(x, y)
    accuracy = float(np.mean(((x @ kernel + bias) > 0) == (y > 0.5)))
    return PairDetector(kernel, bias, epoch, round(accuracy, 5))


def save(detector: PairDetector, workdir: str | Path) -> Path:
    """Writes ``pair_detector.json`` (atomically)."""
    return export.write_atomically(Path(workdir) / FILE, json.dumps(detector.to_json()).encode())


def load(workdir: str | Path, epoch: int | None) -> PairDetector | None:
    """The workdir's detector if it was fitted on ``epoch``'s encoder; None otherwise
    (never fitted, or the run trained on afterwards): reading then never splits."""
    path = Path(workdir) / FILE
    try:
        raw = json.loads(path.read_text())
        kernel = np.asarray(raw["kernel"], np.float64)
        detector = PairDetector(kernel, float(raw["bias"]), int(raw["epoch"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if kernel.shape != (512,) or detector.epoch != epoch:
        return None
    return detector


def fit_and_save(
    workdir: str | Path,
    encoder_params: Any,
    train_images: np.ndarray,
    examples: int,
    epoch: int,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> PairDetector:
    """Fits and saves the detector for ``epoch``, with a one-line report."""
    began = time.perf_counter()
    detector = fit(encoder_params, train_images, examples, epoch, seed)
    save(detector, workdir)
    log(
        f"pair detector: fitted on {examples} fused pairs and {examples} single digits, "
        f"train accuracy {100 * detector.train_accuracy:.1f}%, "
        f"{time.perf_counter() - began:.1f}s"
    )
    return detector
