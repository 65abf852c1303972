"""Loading a trained classifier from its workdir and applying it.

Used by ``evaluate`` and by everything that reads digits: only the parameters
are restored, checked against the architecture before use.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from digits_jax import config_lib, models
from digits_jax.checkpoints import CheckpointError, Checkpoints
from digits_jax.models import Classifier
from digits_jax.surgery import first_mismatch


@dataclass
class LoadedClassifier:
    """A classifier's parameters with the model that applies them."""

    model: Classifier
    params: Any
    meta: dict[str, Any]
    workdir: Path

    def logits(self, images: np.ndarray | jax.Array, batch_size: int = 512) -> np.ndarray:
        """Logits for float images (N, 28, 28) or (N, 28, 28, 1) in [0, 1], in batches.

        Batches are padded to a power of two (at least 32), so photos with
        different digit counts reuse a few compiled shapes (and the disk cache).
        """
        images = np.asarray(images, np.float32)
        if images.ndim == 3:
            images = images[..., None]
        out = []
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size]
            padded = max(32, 1 << (len(batch) - 1).bit_length())
            batch = np.pad(batch, ((0, padded - len(batch)), (0, 0), (0, 0), (0, 0)))
            out.append(np.asarray(_apply(self.model, self.params, batch))[: len(images) - start])
        return np.concatenate(out) if out else np.zeros((0, 10), np.float32)


@functools.partial(jax.jit, static_argnums=0)
def _apply(model: Classifier, params: Any, images: jax.Array) -> jax.Array:
    return model.apply({"params": params}, images)


def load_classifier(workdir: str | Path) -> LoadedClassifier:
    """The latest checkpoint of a classifier workdir; clear errors for anything else."""
    workdir = Path(workdir)
    if not workdir.is_dir():
        raise CheckpointError(f"model directory not found: {workdir}")
    ckpts = Checkpoints(workdir, create=False)
    try:
        meta = ckpts.meta()
        if meta.get("task") != "classifier":
            raise CheckpointError(f"{workdir} holds a {meta.get('task')} run, not a classifier")
        params = ckpts.raw_state()["params"]
    finally:
        ckpts.close()
    config = config_lib.from_json(meta.get("config", {}))
    model = Classifier(conv_impl=config.conv_impl)
    expected = models.param_shapes(model)
    problem = first_mismatch(expected, params)
    if problem:
        raise CheckpointError(f"{workdir} is not this classifier's architecture ({problem})")
    return LoadedClassifier(model, jax.tree.map(jnp.asarray, params), meta, workdir)


def evaluate_workdir(workdir: str | Path, split: str = "test") -> dict[str, Any]:
    """Accuracy and loss of a workdir's latest classifier on a whole MNIST split."""
    from digits_jax import input_pipeline, train, training_loop  # only evaluation needs them

    clf = load_classifier(workdir)
    data = input_pipeline.load_device_split(split)
    state = training_loop.new_state(clf.model, clf.params, optax.identity())
    metrics = training_loop.evaluate(train.TASK, state, data, batch_size=1000)
    return {
        f"{split}_accuracy": metrics["accuracy"],
        f"{split}_loss": metrics["loss"],
        "num_examples": data.size,
        "epoch": clf.meta.get("epoch"),
        "workdir": str(workdir),
    }
