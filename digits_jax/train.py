"""Classifier training: the encoder plus one dense layer, optionally grafted from a DAE.

``train_step`` and ``eval_step`` are pure; :mod:`digits_jax.training_loop`
compiles them into whole chunks of steps over device-resident MNIST.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax.training import train_state

from digits_jax import (
    augment,
    calibration,
    config_lib,
    export,
    input_pipeline,
    models,
    pair_detector,
    parallel,
    surgery,
    training_loop,
)
from digits_jax.checkpoints import CheckpointError, read_latest
from digits_jax.input_pipeline import DeviceSplit, load_device_split, to_float


def create_model(config: ml_collections.ConfigDict) -> models.Classifier:
    return models.Classifier(
        conv_impl=config.conv_impl,
        dropout_rate=config.dropout_rate,
        dtype=models.compute_dtype(config.compute_dtype),
        matmul_dtype=models.resolve_matmul_dtype(config.matmul_dtype),
    )


def create_train_state(
    rng: jax.Array,
    config: ml_collections.ConfigDict,
    steps_per_epoch: int,
    encoder_from: Any | None = None,
) -> train_state.TrainState:
    """A fresh state; ``encoder_from`` (DAE parameters) is grafted into it when given."""
    model = create_model(config)
    params = models.init_params(model, rng)
    if encoder_from is not None:
        params = surgery.graft_encoder(params, encoder_from)
    tx = training_loop.create_optimizer(config, steps_per_epoch)
    if config.freeze_encoder:
        tx = surgery.freeze_encoder(tx)
    return training_loop.new_state(model, params, tx)


def cross_entropy(logits: jax.Array, labels: jax.Array, smoothing: float = 0.0) -> jax.Array:
    """Softmax cross-entropy on logits (the softmax is applied once, here)."""
    if not smoothing:
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    targets = optax.smooth_labels(jax.nn.one_hot(labels, logits.shape[-1]), smoothing)
    return optax.softmax_cross_entropy(logits, targets)


def make_train_step(config: ml_collections.ConfigDict | None = None) -> training_loop.TrainStep:
    """The training step for a config's loss and augmentation settings (None: neither)."""
    config = ml_collections.FrozenConfigDict(config) if config is not None else None
    smoothing = float(config.label_smoothing) if config is not None else 0.0

    def train_step(state, images, labels, rng):
        """One optimizer step on the mean cross-entropy of a (augmented) batch."""
        aug_rng, dropout_rng = jax.random.split(rng)
        if config is not None:
            images = augment.augment(aug_rng, images, config)

        def loss_sum(params, dropout_rng, images, labels):
            logits = state.apply_fn(
                {"params": params}, images, train=True, rngs={"dropout": dropout_rng}
            )
            return jnp.sum(cross_entropy(logits, labels, smoothing))

        loss, grads = parallel.mean_value_and_grad(
            loss_sum, state.params, (images, labels), labels.shape[0], dropout_rng
        )
        return state.apply_gradients(grads=grads), {"loss": loss}

    return train_step


train_step = make_train_step()


def eval_step(state, images, labels, rng):
    """Per-example loss and correctness."""
    del rng
    logits = state.apply_fn({"params": state.params}, images)
    return {
        "loss": cross_entropy(logits, labels),
        "accuracy": (jnp.argmax(logits, -1) == labels).astype(jnp.float32),
    }


_TASKS: dict[str, training_loop.Task] = {}


def task_for(config: ml_collections.ConfigDict) -> training_loop.Task:
    """One Task per config, so compiled steps are reused across calls with the same config."""
    key = config.to_json(sort_keys=True)
    if key not in _TASKS:
        _TASKS[key] = training_loop.Task(
            "classifier", make_train_step(config), eval_step, serving_copy=True
        )
    return _TASKS[key]


@functools.partial(jax.jit, static_argnums=(0, 1))
def _logits(apply_fn, batch, params, images):
    batches = images.reshape(-1, batch, *images.shape[1:])
    out = jax.lax.map(lambda x: apply_fn({"params": params}, to_float(x)), batches)
    return out.reshape(-1, out.shape[-1])


def logits_of(state: train_state.TrainState, split: DeviceSplit, batch: int = 500) -> np.ndarray:
    """Logits (N, 10) of a whole split, compiled in batches."""
    n = split.size
    pad = -n % batch
    images = jnp.pad(split.images, ((0, pad), (0, 0), (0, 0)))
    # Follow the parameters onto their devices (all of a mesh's, when data parallel).
    images = jax.device_put(images, jax.tree.leaves(state.params)[0].sharding)
    return np.asarray(_logits(state.apply_fn, batch, state.params, images))[:n]


def make_calibrated_evaluation(holdout: DeviceSplit, test: DeviceSplit):
    """After each epoch: test loss and accuracy, plus a temperature fitted on held-out digits.

    One forward pass over each split gives every figure: the test set's mean
    loss and accuracy, its calibration error before and after temperature
    scaling, and the held-out accuracy (a validation figure for comparing
    configs without looking at the test set).
    """
    holdout_labels, test_labels = np.asarray(holdout.labels), np.asarray(test.labels)

    def evaluate_epoch(state: train_state.TrainState) -> dict[str, float]:
        holdout_logits = logits_of(state, holdout)
        t = calibration.fit_temperature(holdout_logits, holdout_labels)
        test_logits = logits_of(state, test)
        return {
            "test_loss": calibration.nll(test_logits, test_labels, 1.0),
            "test_accuracy": float(np.mean(test_logits.argmax(-1) == test_labels)),
            "holdout_accuracy": float(np.mean(holdout_logits.argmax(-1) == holdout_labels)),
            "temperature": round(t, 5),
            "test_ece": calibration.expected_calibration_error(
                calibration.softmax(test_logits), test_labels
            ),
            "test_ece_calibrated": calibration.expected_calibration_error(
                calibration.softmax(test_logits, t), test_labels
            ),
        }

    return evaluate_epoch


def load_dae_params(dae_workdir: str | Path) -> Any:
    """The parameters of a DAE workdir's latest checkpoint; refuses other kinds of run."""
    params, meta = read_latest(dae_workdir)
    if meta.get("task") != "dae":
        raise CheckpointError(
            f"--init-from {dae_workdir} holds a {meta.get('task')} run, not a DAE"
        )
    return params


def train_and_evaluate(
    config: ml_collections.ConfigDict,
    workdir: str | Path,
    init_from: str | Path | None = None,
    train: DeviceSplit | None = None,
    test: DeviceSplit | None = None,
) -> dict[str, Any]:
    """Trains the classifier in ``workdir`` (resuming if possible); returns the last metrics."""
    encoder_from = load_dae_params(init_from) if init_from else None
    train = train or load_device_split("train", config.train_limit)
    test = test or load_device_split("test", config.test_limit)
    evaluate_epoch = None
    if config.holdout:
        try:
            train, holdout = input_pipeline.split_off(train, config.holdout)
        except ValueError as error:
            raise config_lib.DigitsJaxError(f"invalid config: holdout: {error}") from error
        evaluate_epoch = make_calibrated_evaluation(holdout, test)
    steps = training_loop.steps_per_epoch(config, train.size)
    state = create_train_state(jax.random.PRNGKey(config.seed), config, steps, encoder_from)
    meta = {
        "config": config_lib.to_json(config),
        "init_from": str(Path(init_from).resolve()) if init_from else None,
    }
    state, last = training_loop.run(
        task_for(config), state, config, workdir, train, test, meta, evaluate_epoch
    )
    if last and jax.process_index() == 0:
        if jax.process_count() == 1:  # one process may open the checkpoints on its own
            export.ensure(workdir)  # (a workdir trained before the serving copy existed)
        if config.pair_detector_examples:
            ensure_pair_detector(workdir, state, train, config, int(last["epoch"]))
    return last


def ensure_pair_detector(
    workdir: str | Path,
    state: train_state.TrainState,
    train: DeviceSplit,
    config: ml_collections.ConfigDict,
    epoch: int,
) -> None:
    """Fits the "two digits" detector on the final encoder unless it is already there."""
    if pair_detector.load(workdir, epoch) is not None:
        return
    encoder = parallel.local_copy(state.params["encoder"])
    pair_detector.fit_and_save(
        workdir,
        encoder,
        np.asarray(train.images),
        config.pair_detector_examples,
        epoch,
        config.seed,
        log=training_loop.log,
    )
