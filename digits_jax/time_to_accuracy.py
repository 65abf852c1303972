"""Time to accuracy: how many seconds of training a config needs to reach a test accuracy.

Throughput alone can flatter a step that learns slowly, so the speed issue's GPU target is
"99.0% on the MNIST test set in under 1 s of training, compile excluded". This module
trains a classifier config from scratch through the project's own compiled path
(``training_loop._train_chunk``: a ``lax.scan`` of real train steps over device-resident
MNIST, donated state), evaluates the whole test set ``evals_per_epoch`` times an epoch,
and reports when the target was first met.

The clock counts the training calls (epoch permutation, gathers, steps), each waited for.
It leaves out compilation (every chunk length and the evaluation are compiled first, on a
throwaway copy of the state) and the evaluations, which are timed apart.

    digits-jax bench --models --to-accuracy 0.99 --race-dtypes float32 bfloat16
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from digits_jax import config_lib, input_pipeline, mnist_files, train, training_loop
from digits_jax.errors import DigitsJaxError
from digits_jax.input_pipeline import DeviceSplit

DEFAULT_CONFIG = config_lib.CONFIG_DIR / "classifier_race.py"


def load_idx_splits(
    folder: str | Path,
    expected: Mapping[str, str] | None = None,
    limits: tuple[int, int] = (0, 0),
) -> tuple[DeviceSplit, DeviceSplit]:
    """MNIST's train and test splits straight from its four IDX files (checksums verified),
    the first (train, test) ``limits`` examples of each when > 0.

    For machines where the TFDS copy was never built (a lent GPU box): TFDS is not imported.
    ``expected`` (file name -> SHA-256) defaults to the published MNIST values.
    """
    arrays, _ = mnist_files.read_verified_folder(Path(folder), expected)
    splits = []
    for split, limit in zip(("train", "test"), limits, strict=True):
        images_name, labels_name = mnist_files.SPLIT_FILES[split]
        splits.append(input_pipeline.device_split(arrays[images_name], arrays[labels_name], limit))
    return splits[0], splits[1]


def load_splits(
    config: ml_collections.ConfigDict, mnist_dir: str | Path | None = None
) -> tuple[DeviceSplit, DeviceSplit]:
    """The race's data: the prepared MNIST, or ``mnist_dir``'s IDX files; the config's limits."""
    if mnist_dir is None:
        return (
            input_pipeline.load_device_split("train", config.train_limit),
            input_pipeline.load_device_split("test", config.test_limit),
        )
    return load_idx_splits(mnist_dir, limits=(config.train_limit, config.test_limit))


def chunk_bounds(steps: int, evals_per_epoch: int) -> list[tuple[int, int]]:
    """(start, stop) step ranges that cover one epoch, with an evaluation after each."""
    count = max(1, min(evals_per_epoch, steps))
    bounds = [round(i * steps / count) for i in range(count + 1)]
    return list(itertools.pairwise(bounds))


def _accuracy(task: training_loop.Task, state: Any, test: DeviceSplit, batch: int) -> float:
    return training_loop.evaluate(task, state, test, batch)["accuracy"]


def _epoch_plan(
    root: jax.Array, epoch: int, size: int, batch: int, bounds: list[tuple[int, int]]
) -> list[tuple[jax.Array, jax.Array]]:
    """Each chunk's (batch indices, rng) for one epoch: a fresh permutation on the device."""
    perm_rng, step_rng = jax.random.split(jax.random.fold_in(root, epoch))
    batches = input_pipeline.epoch_indices(perm_rng, size, batch)
    return [(batches[a:b], jax.random.fold_in(step_rng, i)) for i, (a, b) in enumerate(bounds)]


def _compile(
    task: training_loop.Task,
    state: Any,
    split: DeviceSplit,
    test: DeviceSplit,
    config: ml_collections.ConfigDict,
    bounds: list[tuple[int, int]],
) -> float:
    """Compiles everything the timed loop runs, on a copy of ``state``; seconds taken.

    That is each chunk length, the evaluation, and the small ops of an epoch's plan
    (permutation, slices, rng folds), which JAX compiles on their first call too.
    """
    began = time.perf_counter()
    scratch = jax.tree.map(jnp.copy, state)  # _train_chunk donates the state it is given
    plan = _epoch_plan(jax.random.PRNGKey(0), 0, split.size, config.batch_size, bounds)
    done: set[int] = set()
    for idx, rng in plan:
        if idx.shape[0] not in done:
            done.add(idx.shape[0])
            scratch, _ = training_loop._train_chunk(
                task.train_step, scratch, split.images, split.labels, idx, rng
            )
    jax.block_until_ready(scratch)
    _accuracy(task, scratch, test, config.eval_batch_size)
    return time.perf_counter() - began


def time_to_accuracy(
    config: ml_collections.ConfigDict,
    train_split: DeviceSplit,
    test: DeviceSplit,
    target: float = 0.99,
    evals_per_epoch: int = 4,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Trains ``config`` from scratch, its whole schedule; when did it reach ``target``?

    The whole schedule runs (not only up to the target) so that ``final_accuracy`` can
    compare compute dtypes. Returns a JSON-able dict: ``reached`` (bool),
    ``train_s_to_target`` (training seconds up to the first evaluation at or above
    ``target``; None if never), ``epochs_to_target``, ``compile_s``, ``eval_s`` (all
    evaluations together), ``epoch_s`` (training seconds of each epoch), ``final_accuracy``
    and the whole ``curve`` of (epochs, train_s, accuracy) points. One device: the race
    measures a chip, not a mesh.
    """
    log = log or (lambda _message: None)
    if not 0 < target <= 1:
        raise DigitsJaxError(f"the target accuracy must be in (0, 1], got {target}")
    if config.num_epochs < 1:
        raise DigitsJaxError("the race needs num_epochs >= 1")
    steps = training_loop.steps_per_epoch(config, train_split.size)
    task = train.task_for(config)
    state = train.create_train_state(jax.random.PRNGKey(config.seed), config, steps)
    bounds = chunk_bounds(steps, evals_per_epoch)
    compile_s = _compile(task, state, train_split, test, config, bounds)
    log(f"race {config.compute_dtype}: compiled in {compile_s:.1f} s")
    root = jax.random.PRNGKey(config.seed)
    train_s = eval_s = 0.0
    curve: list[dict[str, float]] = []
    epoch_s: list[float] = []
    reached_at: dict[str, float] | None = None
    for epoch in range(1, config.num_epochs + 1):
        began_epoch = train_s
        began = time.perf_counter()
        plan = _epoch_plan(root, epoch, train_split.size, config.batch_size, bounds)
        for (idx, rng), (_, stop) in zip(plan, bounds, strict=True):
            state, _ = training_loop._train_chunk(
                task.train_step, state, train_split.images, train_split.labels, idx, rng
            )
            jax.block_until_ready(state)
            train_s += time.perf_counter() - began
            began = time.perf_counter()
            accuracy = _accuracy(task, state, test, config.eval_batch_size)
            eval_s += time.perf_counter() - began
            point = {
                "epochs": round(epoch - 1 + stop / steps, 4),
                "train_s": round(train_s, 4),
                "accuracy": accuracy,
            }
            curve.append(point)
            if reached_at is None and accuracy >= target:
                reached_at = point
                log(f"race: {100 * target:.2f}% at {point['epochs']} epochs, {train_s:.3f} s")
            began = time.perf_counter()
        epoch_s.append(round(train_s - began_epoch, 4))
        log(f"race epoch {epoch}: {100 * curve[-1]['accuracy']:.2f}%, {epoch_s[-1]:.3f} s")
    return {
        "config": config_lib.to_json(config),
        "compute_dtype": config.compute_dtype,
        "target": target,
        "reached": reached_at is not None,
        "train_s_to_target": reached_at["train_s"] if reached_at else None,
        "epochs_to_target": reached_at["epochs"] if reached_at else None,
        "compile_s": round(compile_s, 3),
        "eval_s": round(eval_s, 3),
        "epoch_s": epoch_s,
        "final_accuracy": curve[-1]["accuracy"],
        "curve": curve,
    }


def race_config(
    path: str | Path | None = None, dtype: str = "float32", overrides: Sequence[str] = ()
) -> ml_collections.ConfigDict:
    """The race's config (default ``configs/classifier_race.py``) at a compute dtype."""
    extra = [f"compute_dtype={dtype}", "progress=false", *overrides]
    return config_lib.get_config(path or DEFAULT_CONFIG, extra)
