"""A crop verifier: is a crop one whole digit, two fused digits, or a part of one?

``read``'s split and join decisions turn on that question, and the classifier, trained
on whole MNIST digits, answers it only through its confidence (a cut piece of a 0 can
look a sure 1), the pair detector only for fused pairs. The verifier is the classifier's
network with three outputs, trained on the crops extraction really offers on generated
pages of MNIST training digits (every digit, union and cut piece, labelled by its box
against the truth) by ``scripts/train_verifier.py``. It ships with the package
(``assets/verifier.npz``), independent of any one trained classifier, and runs through
the classifier's NumPy forward pass (``numpy_classifier``): reading imports no JAX.
Its loading, saving and training serve the two-digit reader (``pair_reader``) too: the
same network with other outputs.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from digits_jax import calibration, export, layout, numpy_classifier, trees
from digits_jax.errors import DigitsJaxError

CLASSES = ("whole", "two", "part")
Box = Sequence[float]
ASSET = Path(__file__).parent / "assets" / "verifier.npz"
_F32 = np.dtype(np.float32)


def param_specs(classes: int) -> dict[str, Any]:
    """The parameter table of the classifier's network with ``classes`` outputs."""
    return trees.unflatten(
        {
            **{
                k: v
                for k, v in trees.flatten(numpy_classifier.PARAM_SPECS).items()
                if not k.startswith("head/")
            },
            "head/kernel": trees.Spec((numpy_classifier.FEATURES, classes), _F32),
            "head/bias": trees.Spec((classes,), _F32),
        }
    )


def load_network(path: str | Path, classes: int, name: str) -> dict[str, Any]:
    """The parameters of a crop network (``save``'s file: a ``models.Classifier`` tree
    with ``classes`` outputs); ``name`` says what it is in the errors."""
    try:
        with np.load(path) as raw:
            params = trees.unflatten({k: np.asarray(raw[k], np.float32) for k in raw.files})
    except (OSError, ValueError, EOFError) as exc:
        raise DigitsJaxError(f"cannot load the {name} {path}: {exc}") from None
    mismatch = trees.first_mismatch(param_specs(classes), params, source="file")
    if mismatch:
        raise DigitsJaxError(f"{path} is not a {name}: {mismatch}")
    return params


@functools.cache
def load(path: str | Path = ASSET) -> dict[str, Any]:
    """The verifier's parameters (a ``models.Classifier`` tree with three classes)."""
    return load_network(path, len(CLASSES), "crop verifier")


def probabilities(crops: np.ndarray, params: dict[str, Any] | None = None) -> np.ndarray:
    """p(whole, two, part) (N, 3) for 28x28 crops (N, 28, 28) in [0, 1]; with another
    crop network's ``params``, its probabilities (N, its outputs)."""
    params = load() if params is None else params
    logits = numpy_classifier.outputs(params, crops)[:, : len(params["head"]["bias"])]
    return calibration.softmax(logits, 1.0)


def labels_of(boxes: Sequence[Box], truth: Sequence[Box]) -> np.ndarray:
    """Each box's class index into ``CLASSES`` against the true boxes (x, y, w, h):
    "whole" where it matches a true digit (IoU >= 0.5), "two" where it covers half or
    more of each of two true digits or more, "part" otherwise."""
    inter = layout.intersections(boxes, truth)
    iou = layout.iou_matrix(boxes, truth)
    whole = np.any(iou >= 0.5, axis=1)
    two = np.sum(inter / np.maximum(layout.areas(truth), 1e-9) >= 0.5, axis=1) >= 2
    return np.where(whole, 0, np.where(two, 1, 2)).astype(np.int32)


def offered(lines: Sequence[Sequence[Any]], rng: np.random.Generator, cuts: int) -> list[Any]:
    """The crops extraction offers for ``lines`` of ``extraction.Digit``: each digit, its
    union with the next one, and the pieces of up to ``cuts`` of its cuts and re-cuts
    (drawn by ``rng``), each once."""
    found: dict[int, Any] = {}
    for line in lines:
        for d in line:
            found[id(d)] = d
            if d.joined is not None:
                found[id(d.joined)] = d.joined
            for alternatives in (d.splits, d.recuts):
                for k in rng.permutation(len(alternatives or ()))[:cuts]:
                    found.update((id(p), p) for p in alternatives[int(k)])
    return list(found.values())


def save(params: dict[str, Any], path: str | Path = ASSET) -> Path:
    """Writes a crop network's parameters as a flat ``.npz`` (atomically)."""
    buffer = io.BytesIO()
    np.savez(buffer, **{k: np.asarray(v, np.float32) for k, v in trees.flatten(params).items()})
    return export.write_atomically(Path(path), buffer.getvalue())


def fit(
    crops: np.ndarray,
    labels: np.ndarray,
    encoder: dict[str, Any] | None = None,
    epochs: int = 12,
    batch_size: int = 128,
    seed: int = 0,
    progress: Callable[[int, float], None] | None = None,
    classes: int = len(CLASSES),
) -> dict[str, Any]:
    """Trains the verifier (or another crop network of ``classes`` outputs) on uint8
    crops (N, 28, 28) and class indices (N,) (Adam, cosine schedule, cross-entropy); its
    encoder starts from ``encoder`` (a trained classifier's, by pytree surgery) when
    given. ``progress`` gets each epoch's index and mean loss. Imports JAX."""
    import jax
    import jax.numpy as jnp
    import optax

    from digits_jax import input_pipeline, models, surgery, train, training_loop

    model = models.Classifier(num_classes=classes)
    params = models.init_params(model, jax.random.key(seed))
    if encoder is not None:
        params = surgery.graft_encoder(params, {"encoder": jax.tree.map(jnp.asarray, encoder)})
    steps = len(crops) // batch_size
    if steps == 0:
        raise DigitsJaxError(f"{len(crops)} crops: fewer than one batch of {batch_size}")
    tx = optax.adam(optax.cosine_decay_schedule(1e-3, epochs * steps))
    state = training_loop.new_state(model, params, tx)
    # The classifier's own step: mean cross-entropy, no augmentation, no dropout (so its
    # rng draws nothing).
    step = jax.jit(lambda state, x, y: train.train_step(state, input_pipeline.to_float(x), y, key))
    rng = np.random.default_rng(seed)
    key = jax.random.key(seed)
    labels = np.asarray(labels, np.int32)
    for epoch in range(epochs):
        order = rng.permutation(len(crops))[: steps * batch_size].reshape(steps, batch_size)
        losses = []
        for idx in order:
            state, metrics = step(state, crops[idx], labels[idx])
            losses.append(metrics["loss"])
        if progress is not None:
            progress(epoch, float(np.mean(jax.device_get(losses))))
    return jax.tree.map(np.asarray, jax.device_get(state.params))
