"""Denoising-autoencoder pretraining (the original's first stage).

The input is ``clip(x + sigma * N(0, 1), 0, 1)``, the target the clean ``x``,
the loss the mean squared error. The encoder it learns can be grafted into the
classifier (``digits-jax train --init-from``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax.training import train_state

from digits_jax import config_lib, input_pipeline, models, parallel, plots, training_loop
from digits_jax.input_pipeline import DeviceSplit

RECONSTRUCTIONS_FILE = "reconstructions.png"


def create_model(config: ml_collections.ConfigDict) -> models.DAE:
    return models.DAE(
        conv_impl=config.conv_impl,
        dtype=models.compute_dtype(config.compute_dtype),
        matmul_dtype=models.resolve_matmul_dtype(config.matmul_dtype),
    )


def add_noise(images: jax.Array, rng: jax.Array, sigma: float) -> jax.Array:
    """The denoising corruption: Gaussian noise, clipped back to [0, 1].

    Materialised (:func:`models.materialize`), so that the encoder's unfolded
    convolution does not draw it once per slice; drawn inside the fold that
    :class:`models.PhaseConvPool` now materialises itself, the step ran 7% slower.
    """
    noisy = jnp.clip(images + sigma * jax.random.normal(rng, images.shape), 0.0, 1.0)
    return models.materialize(noisy, jax.random.key_data(rng).ravel()[0] == 0)


def create_train_state(
    rng: jax.Array, config: ml_collections.ConfigDict, steps_per_epoch: int
) -> train_state.TrainState:
    model = create_model(config)
    tx = training_loop.create_optimizer(config, steps_per_epoch)
    return training_loop.new_state(model, models.init_params(model, rng), tx)


def make_train_step(sigma: float) -> training_loop.TrainStep:
    def train_step(state, images, labels, rng):
        del labels
        noisy = add_noise(images, rng, sigma)

        def loss_sum(params, noisy, images):
            recon = state.apply_fn({"params": params}, noisy, train=True)
            return jnp.sum((recon - images) ** 2)

        loss, grads = parallel.mean_value_and_grad(
            loss_sum, state.params, (noisy, images), images.size
        )
        return state.apply_gradients(grads=grads), {"loss": loss}

    return train_step


def make_eval_step(sigma: float) -> training_loop.EvalStep:
    def eval_step(state, images, labels, rng):
        del labels
        recon = state.apply_fn({"params": state.params}, add_noise(images, rng, sigma))
        return {"loss": jnp.mean((recon - images) ** 2, axis=(1, 2, 3))}

    return eval_step


_STEPS: dict[float, training_loop.Task] = {}


def task_for(config: ml_collections.ConfigDict) -> training_loop.Task:
    """One Task per noise level, so compiled steps are reused across calls."""
    sigma = float(config.noise_sigma)
    if sigma not in _STEPS:
        _STEPS[sigma] = training_loop.Task("dae", make_train_step(sigma), make_eval_step(sigma))
    return _STEPS[sigma]


def save_reconstructions(
    state: train_state.TrainState, test: DeviceSplit, sigma: float, path: Path, n: int = 10
) -> None:
    """Writes the clean | noisy | reconstructed grid for the first test digits."""
    clean = input_pipeline.to_float(test.images[:n])
    noisy = add_noise(clean, jax.random.PRNGKey(0), sigma)
    recon = state.apply_fn({"params": state.params}, noisy)
    plots.plot_reconstructions(*(np.asarray(a) for a in (clean, noisy, recon)), path)


def train_and_evaluate(
    config: ml_collections.ConfigDict,
    workdir: str | Path,
    train: DeviceSplit | None = None,
    test: DeviceSplit | None = None,
) -> dict[str, Any]:
    """Pretrains the DAE in ``workdir`` (resuming if possible); returns the last metrics."""
    train = train or input_pipeline.load_device_split("train", config.train_limit)
    test = test or input_pipeline.load_device_split("test", config.test_limit)
    steps = training_loop.steps_per_epoch(config, train.size)
    state = create_train_state(jax.random.PRNGKey(config.seed), config, steps)
    meta = {"config": config_lib.to_json(config)}
    state, last = training_loop.run(task_for(config), state, config, workdir, train, test, meta)
    save_reconstructions(state, test, config.noise_sigma, Path(workdir) / RECONSTRUCTIONS_FILE)
    return last
