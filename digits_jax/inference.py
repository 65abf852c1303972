"""Loading trained classifiers from their workdirs and applying them.

Used by ``evaluate`` and by everything that reads digits: only the parameters are
restored (the serving copy, ``export``, else the checkpoint), checked against the
architecture before use. Two backends apply them: "numpy" (``numpy_classifier``), what
``read`` and ``classify`` use by default, since a photo's few dozen crops cost
milliseconds while importing JAX costs a second; and "jax", the jitted Flax module with
the persistent compilation cache, what ``evaluate`` uses and every TTA view. Confidences
are temperature-calibrated when the run fitted a temperature; several workdirs make an
ensemble (probabilities averaged), and ``tta`` averages fixed augmented views.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from digits_jax import calibration, export, numpy_classifier, pair_detector, trees
from digits_jax.checkpoints import CheckpointError, read_latest
from digits_jax.errors import DigitsJaxError

BACKENDS = ("numpy", "jax")
MAX_TTA = 9  # len(augment.TTA_VIEWS), held equal by a test (augment imports JAX)
OUTPUT_WIDTH = 10 + numpy_classifier.FEATURES


@functools.cache
def enable_compilation_cache() -> None:
    """JAX's persistent compilation cache, in the machine-wide cache: a second run skips
    compiling."""
    import jax

    from digits_jax.mnist_files import cache_root

    jax.config.update("jax_compilation_cache_dir", str(cache_root() / "jax"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


@functools.cache
def _jitted_outputs() -> Callable:
    import jax
    import jax.numpy as jnp

    from digits_jax import augment

    @functools.partial(jax.jit, static_argnums=(0, 3))
    def outputs(model: Any, params: Any, images: jax.Array, view: int) -> jax.Array:
        logits, features = model.apply(
            {"params": params}, augment.tta_view(images, view), features=True
        )
        return jnp.concatenate([logits, features], axis=-1)

    return outputs


def jax_outputs(model: Any, params: Any, images: Any, view: int = 0) -> Any:
    """Logits and encoder features side by side, (N, 10 + 512), of a ``models.Classifier``
    for TTA view ``view``: one compiled function serves the classifier and the pair
    detector (a reader loads one executable)."""
    return _jitted_outputs()(model, params, images, view)


@dataclass
class LoadedClassifier:
    """A classifier's parameters (NumPy arrays) and the backend that applies them."""

    params: dict[str, Any]
    meta: dict[str, Any]
    workdir: Path
    detector: pair_detector.PairDetector | None = None
    backend: str = "numpy"

    @property
    def temperature(self) -> float:
        """The fitted calibration temperature (1.0 when the run held nothing out)."""
        return float(self.meta.get("temperature") or 1.0)

    @functools.cached_property
    def jax_state(self) -> tuple[Any, Any]:
        """(the Flax module the run's config builds, the parameters on the device), made
        on first use: it imports JAX."""
        enable_compilation_cache()
        import jax

        from digits_jax import config_lib, models

        config = config_lib.from_json(self.meta.get("config", {}))
        model = models.Classifier(
            conv_impl=models.resolve_conv_impl(config.conv_impl, training=False),
            dtype=models.compute_dtype(config.compute_dtype),
        )
        return model, jax.device_put(self.params)

    def outputs(self, images: np.ndarray, view: int = 0, batch_size: int = 512) -> np.ndarray:
        """Logits and encoder features (N, 10 + 512) for float images (N, 28, 28) or
        (N, 28, 28, 1) in [0, 1].

        On JAX (``backend="jax"`` or a TTA view), batches are padded to a power of two
        (at least 32), so photos with different digit counts reuse a few compiled shapes
        (and the disk cache).
        """
        images = np.asarray(images, np.float32)
        if images.ndim == 3:
            images = images[..., None]
        if self.backend == "numpy" and view == 0:
            return numpy_classifier.outputs(self.params, images, batch_size)
        from digits_jax import models

        model, params = self.jax_state
        apply = lambda batch: jax_outputs(model, params, batch, view)  # noqa: E731
        return models.apply_in_batches(apply, images, batch_size, width=OUTPUT_WIDTH)

    def logits(self, images: np.ndarray, view: int = 0) -> np.ndarray:
        """Logits (N, 10) for float images in [0, 1] (see ``outputs``)."""
        return self.outputs(images, view)[:, :10]

    def read(self, images: np.ndarray, tta: int = 1) -> tuple[np.ndarray, np.ndarray | None]:
        """Calibrated probabilities (N, 10), averaged over the first ``tta`` views, and
        p(two fused digits) (N,) or None when the run has no detector: one pass for both."""
        first = self.outputs(images)
        views = [first[:, :10]] + [self.logits(images, view) for view in range(1, tta)]
        probs = np.mean([calibration.softmax(v, self.temperature) for v in views], axis=0)
        pair = None if self.detector is None else self.detector.probability(first[:, 10:])
        return probs, pair

    def probabilities(self, images: np.ndarray, tta: int = 1) -> np.ndarray:
        """Calibrated probabilities (N, 10), averaged over the first ``tta`` views."""
        return self.read(images, tta)[0]

    def pair_probability(self, images: np.ndarray) -> np.ndarray | None:
        """p(two fused digits) for each crop, or None when the run has no detector."""
        return self.read(images)[1]


@dataclass
class Ensemble:
    """Several classifiers whose calibrated probabilities are averaged."""

    members: list[LoadedClassifier]

    def read(self, images: np.ndarray, tta: int = 1) -> tuple[np.ndarray, np.ndarray | None]:
        """The members' probabilities averaged, and their detectors' (None when none of
        them has one)."""
        if len(images) == 0:
            detector = any(m.detector is not None for m in self.members)
            return np.zeros((0, 10), np.float32), np.zeros(0) if detector else None
        if not 1 <= tta <= MAX_TTA:
            raise DigitsJaxError(f"--tta must be between 1 and {MAX_TTA}, got {tta}")
        reads = [m.read(images, tta) for m in self.members]
        found = [pair for _, pair in reads if pair is not None]
        return np.mean([p for p, _ in reads], axis=0), np.mean(found, axis=0) if found else None

    def probabilities(self, images: np.ndarray, tta: int = 1) -> np.ndarray:
        return self.read(images, tta)[0]

    def pair_probability(self, images: np.ndarray) -> np.ndarray | None:
        return self.read(images)[1]


def load_classifier(workdir: str | Path, backend: str = "numpy") -> LoadedClassifier:
    """The latest checkpoint of a classifier workdir (its serving copy when training wrote
    one, ``export``); clear errors for anything else."""
    if backend not in BACKENDS:
        raise DigitsJaxError(f"unknown backend {backend!r} (one of {', '.join(BACKENDS)})")
    workdir = Path(workdir)
    if not workdir.is_dir():
        raise CheckpointError(f"model directory not found: {workdir}")
    params, meta = export.load(workdir) or read_latest(workdir)
    if meta.get("task") != "classifier":
        raise CheckpointError(f"{workdir} holds a {meta.get('task')} run, not a classifier")
    problem = trees.first_mismatch(numpy_classifier.PARAM_SPECS, params, source="checkpoint")
    if problem:
        raise CheckpointError(f"{workdir} is not this classifier's architecture ({problem})")
    detector = pair_detector.load(workdir, meta.get("epoch"))
    params = export.to_numpy(params)  # whichever file they came from
    return LoadedClassifier(params, meta, workdir, detector, backend)


def load_ensemble(workdirs: Sequence[str | Path], backend: str = "numpy") -> Ensemble:
    """One or more classifier workdirs as an ensemble."""
    if not workdirs:
        raise DigitsJaxError("no model given")
    return Ensemble([load_classifier(w, backend) for w in workdirs])


def evaluate_workdirs(
    workdirs: Sequence[str | Path], split: str = "test", tta: int = 1
) -> dict[str, Any]:
    """Accuracy, loss (NLL) and calibration error of a model or ensemble on an MNIST split."""
    from digits_jax import data  # TFDS: only evaluation needs it

    ensemble = load_ensemble(workdirs, backend="jax")
    images, labels = data.load_split(split)
    probs = ensemble.probabilities(images.astype(np.float32) / 255.0, tta)
    picked = np.clip(probs[np.arange(len(labels)), labels], 1e-12, 1.0)
    return {
        f"{split}_accuracy": float(np.mean(probs.argmax(1) == labels)),
        f"{split}_loss": float(-np.mean(np.log(picked))),
        f"{split}_ece": calibration.expected_calibration_error(probs, labels),
        "num_examples": len(labels),
        "models": len(ensemble.members),
        "tta": tta,
        "temperatures": [m.temperature for m in ensemble.members],
        "epochs": [m.meta.get("epoch") for m in ensemble.members],
        "workdirs": [str(w) for w in workdirs],
    }
