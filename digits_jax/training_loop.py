"""The epoch loop shared by pretraining and training.

A task (DAE or classifier) supplies a pure ``train_step`` and ``eval_step``;
this module compiles them into chunks of ``lax.scan`` over device-side batches,
and around them runs what every run needs: resume from the latest checkpoint,
a progress bar, per-epoch JSON-lines metrics, ``curves.png`` and a checkpoint
each epoch.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax.training import train_state
from tqdm.auto import tqdm

from digits_jax import config_lib, export, input_pipeline, parallel, plots
from digits_jax.checkpoints import CheckpointError, Checkpoints
from digits_jax.input_pipeline import DeviceSplit

METRICS_FILE = "metrics.jsonl"
CURVES_FILE = "curves.png"

TrainStep = Callable[[train_state.TrainState, jax.Array, jax.Array, jax.Array], Any]
EvalStep = Callable[[train_state.TrainState, jax.Array, jax.Array, jax.Array], dict[str, Any]]


@dataclass(frozen=True)
class Task:
    """What differs between pretraining and training.

    ``train_step(state, images, labels, rng) -> (state, {"loss": scalar})`` and
    ``eval_step(state, images, labels, rng) -> {name: per-example values}``,
    with images float32 (B, 28, 28, 1) in [0, 1].
    """

    name: str
    train_step: TrainStep
    eval_step: EvalStep
    # Write the parameters' serving copy (``export``) beside each checkpoint.
    serving_copy: bool = False


def create_learning_rate_fn(
    config: ml_collections.ConfigDict, steps_per_epoch: int
) -> optax.Schedule:
    """The learning-rate schedule the config names, in optimizer steps."""
    total = max(1, config.num_epochs * steps_per_epoch)
    if config.lr_schedule == "constant":
        return optax.constant_schedule(config.learning_rate)
    if config.lr_schedule == "step":
        return optax.exponential_decay(
            config.learning_rate,
            transition_steps=config.lr_decay_every * steps_per_epoch,
            decay_rate=config.lr_decay_factor,
            staircase=True,
        )
    warmup = min(int(config.warmup_epochs * steps_per_epoch), total - 1)
    return optax.warmup_cosine_decay_schedule(
        0.0, config.learning_rate, warmup_steps=max(warmup, 0), decay_steps=total
    )


def create_optimizer(
    config: ml_collections.ConfigDict, steps_per_epoch: int
) -> optax.GradientTransformation:
    lr = create_learning_rate_fn(config, steps_per_epoch)
    decay = config.weight_decay  # decoupled (AdamW-style), on kernels only
    if config.optimizer == "sgd":
        tx = optax.sgd(lr, momentum=0.9)
        return optax.chain(optax.add_decayed_weights(decay, mask=_kernels), tx) if decay else tx
    return optax.adamw(lr, weight_decay=decay, mask=_kernels) if decay else optax.adam(lr)


def _kernels(params: Any) -> Any:
    return jax.tree_util.tree_map_with_path(
        lambda path, _: getattr(path[-1], "key", None) == "kernel", params
    )


def steps_per_epoch(config: ml_collections.ConfigDict, num_examples: int) -> int:
    steps = num_examples // config.batch_size
    if steps == 0:
        raise config_lib.DigitsJaxError(
            f"batch_size {config.batch_size} is larger than the {num_examples} training examples"
        )
    return steps


def _gather(images: jax.Array, labels: jax.Array, idx: jax.Array, sharding: Any) -> tuple:
    """A batch from the device-resident split, split across the mesh when there is one."""
    x, y = input_pipeline.to_float(images[idx]), labels[idx]
    if sharding is not None:
        x = jax.lax.with_sharding_constraint(x, sharding)
        y = jax.lax.with_sharding_constraint(y, sharding)
    return x, y


@functools.partial(jax.jit, static_argnums=(0, 6), donate_argnums=1)
def _train_chunk(
    train_step: TrainStep,
    state: train_state.TrainState,
    images: jax.Array,
    labels: jax.Array,
    batch_idx: jax.Array,
    rng: jax.Array,
    sharding: Any = None,
) -> tuple[train_state.TrainState, dict[str, jax.Array]]:
    """Runs ``len(batch_idx)`` training steps in one compiled scan; returns summed metrics."""

    def body(state, xs):
        idx, step_rng = xs
        state, metrics = train_step(state, *_gather(images, labels, idx, sharding), step_rng)
        return state, metrics

    rngs = jax.random.split(rng, batch_idx.shape[0])
    # The steps see the mesh (``parallel.mean_value_and_grad`` splits their gradients).
    mesh_context = (
        contextlib.nullcontext()
        if sharding is None
        else jax.sharding.use_abstract_mesh(sharding.mesh.abstract_mesh)
    )
    with mesh_context:
        state, metrics = jax.lax.scan(body, state, (batch_idx, rngs))
    return state, jax.tree.map(jnp.sum, metrics)


@functools.partial(jax.jit, static_argnums=(0, 7))
def _evaluate(
    eval_step: EvalStep,
    state: train_state.TrainState,
    images: jax.Array,
    labels: jax.Array,
    batch_idx: jax.Array,
    mask: jax.Array,
    rng: jax.Array,
    sharding: Any = None,
) -> dict[str, jax.Array]:
    def one(xs):
        idx, batch_rng = xs
        return eval_step(state, *_gather(images, labels, idx, sharding), batch_rng)

    rngs = jax.random.split(rng, batch_idx.shape[0])
    per_example = jax.lax.map(one, (batch_idx, rngs))
    return jax.tree.map(lambda v: jnp.sum(v * mask) / jnp.sum(mask), per_example)


def evaluate(
    task: Task,
    state: train_state.TrainState,
    split: DeviceSplit,
    batch_size: int,
    seed: int = 0,
    mesh: Any = None,
) -> dict[str, float]:
    """Mean of each per-example metric of ``task.eval_step`` over a whole split."""
    idx, mask = input_pipeline.eval_batches(split.size, batch_size)
    if mesh is not None and idx.shape[1] % mesh.size:
        mesh = None  # a batch the mesh cannot split evenly is evaluated unsharded
    rng = jax.random.PRNGKey(seed)
    sharding = parallel.batch_sharding(mesh)
    means = _evaluate(task.eval_step, state, split.images, split.labels, idx, mask, rng, sharding)
    return {k: float(v) for k, v in means.items()}


def train_epoch(
    task: Task,
    state: train_state.TrainState,
    train: DeviceSplit,
    config: ml_collections.ConfigDict,
    rng: jax.Array,
    bar: tqdm | None = None,
    mesh: Any = None,
) -> tuple[train_state.TrainState, dict[str, float]]:
    """One pass over a fresh permutation of the training split, in compiled chunks."""
    perm_rng, step_rng = jax.random.split(rng)
    batches = input_pipeline.epoch_indices(perm_rng, train.size, config.batch_size)
    totals: dict[str, float] = {}
    steps = batches.shape[0]
    per_call = config.steps_per_call or steps  # 0: the whole epoch in one compiled call
    sharding = parallel.batch_sharding(mesh)
    for chunk, start in enumerate(range(0, steps, per_call)):
        idx = batches[start : start + per_call]
        chunk_rng = jax.random.fold_in(step_rng, chunk)
        state, sums = _train_chunk(
            task.train_step,
            state,
            train.images,
            train.labels,
            idx,
            chunk_rng,
            sharding,
        )
        for key, value in sums.items():
            totals[key] = totals.get(key, 0.0) + float(value)
        if bar is not None:
            bar.update(idx.shape[0])
            bar.set_postfix(loss=f"{totals['loss'] / (start + idx.shape[0]):.4f}")
    return state, {f"train_{k}": v / steps for k, v in totals.items()}


def read_metrics(workdir: str | Path) -> list[dict[str, Any]]:
    path = Path(workdir) / METRICS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _write_metrics(workdir: Path, rows: list[dict[str, Any]]) -> None:
    tmp = workdir / (METRICS_FILE + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tmp.replace(workdir / METRICS_FILE)


def _format(row: dict[str, Any]) -> str:
    parts = [f"epoch {row['epoch']}"]
    for key, value in row.items():
        if key == "epoch":
            continue
        if key.endswith("accuracy"):
            parts.append(f"{key} {100 * value:.2f}%")
        elif key.endswith("_s"):
            parts.append(f"{key[:-2]} {value:.1f}s")
        else:
            parts.append(f"{key} {value:.4g}")
    return "  ".join(parts)


def run(
    task: Task,
    state: train_state.TrainState,
    config: ml_collections.ConfigDict,
    workdir: str | Path,
    train: DeviceSplit,
    test: DeviceSplit,
    meta: dict[str, Any],
    evaluate_epoch: Callable[[train_state.TrainState], dict[str, Any]] | None = None,
) -> tuple[train_state.TrainState, dict[str, Any]]:
    """Trains ``state`` for ``config.num_epochs``, resuming from the workdir's checkpoints.

    After each epoch ``evaluate_epoch(state)`` gives the figures for the metrics
    row (default: the task's ``eval_step`` over ``test``, keys prefixed ``test_``);
    a task that needs more than means (calibration, say) computes them all from
    one pass. They are saved with the checkpoint's metadata too.
    Returns the final state and the last epoch's metrics row.
    """
    workdir = Path(workdir)
    mesh = parallel.data_mesh(config.data_parallel)
    parallel.check_divisible(config.batch_size, mesh)
    workdir.mkdir(parents=True, exist_ok=True)
    ckpts = Checkpoints(workdir, keep=config.keep_checkpoints)
    start = ckpts.latest_epoch() or 0
    rows = read_metrics(workdir)
    if start:
        saved = ckpts.meta(start)
        if saved.get("task") != task.name:
            raise CheckpointError(
                f"{workdir} holds a {saved.get('task')} run, not a {task.name} run"
            )
        changes = config_lib.shape_changes(saved.get("config", {}), config)
        if changes:
            raise CheckpointError(
                f"cannot resume {workdir}: the config changes the saved state's shapes "
                f"({'; '.join(changes)}); use a new --workdir"
            )
        state = ckpts.restore(state, start)
        rows = [r for r in rows if r["epoch"] <= start]
        log(f"resuming {workdir} from epoch {start}")
    if mesh is not None:
        state, train, test = parallel.replicate((state, train, test), mesh)
        log(f"data parallel over {mesh.size} devices ({jax.process_count()} processes)")
    root = jax.random.PRNGKey(config.seed)
    last = rows[-1] if rows else {}
    for epoch in range(start + 1, config.num_epochs + 1):
        began = time.perf_counter()
        total = train.size // config.batch_size
        with tqdm(
            total=total,
            desc=f"{task.name} epoch {epoch}/{config.num_epochs}",
            unit="step",
            disable=None if config.progress else True,  # None: off when not a terminal
            leave=False,
            file=sys.stderr,
        ) as bar:
            state, train_metrics = train_epoch(
                task, state, train, config, jax.random.fold_in(root, epoch), bar, mesh
            )
        train_s = time.perf_counter() - began
        if evaluate_epoch is None:
            means = evaluate(task, state, test, config.eval_batch_size, config.seed, mesh)
            figures = {f"test_{k}": v for k, v in means.items()}
        else:
            figures = evaluate_epoch(state)
        last = {"epoch": epoch, **train_metrics, **figures, "epoch_s": round(train_s, 3)}
        rows.append(last)
        saved = {**meta, **figures, "task": task.name, "epoch": epoch}
        ckpts.save(epoch, state, saved)
        if jax.process_index() == 0:  # one writer for the files beside the checkpoints
            if task.serving_copy:
                export.save(workdir, parallel.local_copy(state.params), saved)
            _write_metrics(workdir, rows)
            plots.plot_curves(rows, workdir / CURVES_FILE, title=f"{task.name}: {workdir.name}")
            log(_format(last))
    ckpts.close()
    if start >= config.num_epochs:
        log(f"{workdir} already holds epoch {start} of {config.num_epochs}; nothing to train")
    return state, last


def log(message: str) -> None:
    """Status lines go to stderr, so stdout stays for results."""
    tqdm.write(message, file=sys.stderr)


def new_state(model: Any, params: Any, tx: optax.GradientTransformation) -> train_state.TrainState:
    """A TrainState whose step is an int32 array (so checkpoints compare cleanly)."""
    state = train_state.TrainState.create(apply_fn=model.apply, params=params, tx=tx)
    return state.replace(step=jnp.asarray(0, jnp.int32))
