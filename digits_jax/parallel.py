"""Data parallelism with JAX's own machinery: a mesh, a sharded batch, replicated state.

``jit`` does the partitioning: parameters, optimizer state and the uint8 dataset
are replicated on every device; each batch is constrained to be split along the
mesh's ``data`` axis, so each device computes its slice. The gradient alone is taken
per device (``mean_value_and_grad``, a ``shard_map``), so that it meets the other
devices' in one all-reduce of one flat buffer. Across hosts,
``jax.distributed.initialize`` joins the processes first; each process then supplies
the shards its own devices hold.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from digits_jax.errors import DigitsJaxError

DATA_AXIS = "data"
MIN_PER_DEVICE = 16  # images per CPU device below which splitting stops paying
FORCE_FLAG = "xla_force_host_platform_device_count"


def initialize_distributed(
    coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None
) -> bool:
    """Joins a multi-process run when a coordinator is given (flag or environment).

    Environment: ``DIGITS_JAX_COORDINATOR`` (host:port), ``DIGITS_JAX_NUM_PROCESSES``,
    ``DIGITS_JAX_PROCESS_ID``. Returns whether a multi-process run was joined.
    """
    coordinator = coordinator or os.environ.get("DIGITS_JAX_COORDINATOR")
    if not coordinator:
        return False
    try:
        num_processes = int(num_processes or os.environ["DIGITS_JAX_NUM_PROCESSES"])
        process_id = int(
            process_id if process_id is not None else os.environ["DIGITS_JAX_PROCESS_ID"]
        )
    except (KeyError, ValueError) as error:
        raise DigitsJaxError(
            "a distributed run needs the number of processes and this process's id "
            "(--num-processes/--process-id or DIGITS_JAX_NUM_PROCESSES/DIGITS_JAX_PROCESS_ID)"
        ) from error
    if not 0 <= process_id < num_processes:
        raise DigitsJaxError(f"process id {process_id} is not in [0, {num_processes})")
    # CPU devices of several processes talk through gloo; GPUs and TPUs ignore this.
    # (Asking for the backend here would initialise it too early.)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator, num_processes, process_id)
    return True


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask where the OS has one)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity else os.cpu_count() or 1


def cpu_device_count(requested: int, batch_size: int, cores: int | None = None) -> int:
    """How many devices to split the CPU into for training with ``batch_size``.

    ``requested`` > 0 is taken as given; 0 means one per core, at most one per
    ``MIN_PER_DEVICE`` images of the batch, and a number that divides the batch.
    XLA's CPU backend spreads one device's small ops poorly over several cores;
    separate devices each run their share of the batch at once (docs/benchmarks.md,
    "Stop 13": on 2 cores the DAE's step 24-47% faster, the classifier's -2% to +31%).
    """
    if requested < 0:
        raise DigitsJaxError(f"cpu_devices must be >= 0, got {requested}")
    if requested:
        return requested
    cores = cores or usable_cores()
    count = max(1, min(cores, batch_size // MIN_PER_DEVICE))
    while batch_size % count:
        count -= 1
    return count


def split_cpu(count: int) -> bool:
    """Asks JAX for ``count`` CPU devices; returns whether that took effect.

    Only possible before JAX's first operation, and left alone when ``XLA_FLAGS``
    already forces a device count or ``count`` is 1.
    """
    if count <= 1 or FORCE_FLAG in os.environ.get("XLA_FLAGS", ""):
        return False
    try:
        jax.config.update("jax_num_cpu_devices", count)
    except RuntimeError:  # the backend is already running: keep its devices
        return False
    return True


def data_mesh(enabled: bool = True) -> Mesh | None:
    """A 1-D mesh over every device of every process, or None on a single device."""
    if not enabled or jax.device_count() == 1:
        return None
    return jax.make_mesh(
        (jax.device_count(),), (DATA_AXIS,), axis_types=(jax.sharding.AxisType.Auto,)
    )


def batch_sharding(mesh: Mesh | None) -> NamedSharding | None:
    return None if mesh is None else NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicate(tree: Any, mesh: Mesh | None) -> Any:
    """Places every array of a pytree on all the mesh's devices (a no-op without a mesh)."""
    if mesh is None:
        return tree
    sharding = NamedSharding(mesh, PartitionSpec())

    def put(x: Any) -> Any:
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

    return jax.tree.map(put, tree)


def local_copy(tree: Any) -> Any:
    """A host (numpy) copy of replicated arrays, read from this process's own shard: a
    multi-process array cannot be fetched whole by one process (``jax.device_get``)."""
    return jax.tree.map(lambda x: np.asarray(x.addressable_data(0)), tree)


def check_divisible(batch_size: int, mesh: Mesh | None, what: str = "batch_size") -> None:
    if mesh is not None and batch_size % mesh.size:
        raise DigitsJaxError(
            f"{what} {batch_size} must be a multiple of the {mesh.size} devices for data "
            "parallelism (or set --config.data_parallel=false)"
        )


def mean_value_and_grad(
    loss_sum: Callable[..., jax.Array],
    params: Any,
    batch: tuple[jax.Array, ...],
    count: int,
    rng: jax.Array | None = None,
) -> tuple[jax.Array, Any]:
    """``loss_sum(params, *batch) / count`` and its gradient in ``params``: a batch mean
    (``count`` terms summed over the whole batch). With ``rng``, it is called as
    ``loss_sum(params, rng, *batch)``.

    Under a mesh with a ``data`` axis (``jax.sharding.get_abstract_mesh``, set by the
    training loop), each device differentiates its own slice of the batch and the
    gradients meet in one all-reduce of one flat buffer. Left to ``jit``, the gradient of
    each parameter array was all-reduced apart, and XLA's CPU collectives meet the other
    devices once per array (docs/benchmarks.md, "Stop 29"). Dividing each device's sum
    by the whole batch's ``count`` keeps the same cotangents, so the values are the
    partitioned mean's up to float32 rounding (the sums run in another order). Each
    device folds its index into ``rng`` (its own dropout).
    """

    def grad(params: Any, rng: jax.Array | None, *batch: jax.Array) -> tuple[jax.Array, Any]:
        args = batch if rng is None else (rng, *batch)
        return jax.value_and_grad(lambda p: loss_sum(p, *args) / count)(params)

    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty or DATA_AXIS not in mesh.axis_names or mesh.shape[DATA_AXIS] == 1:
        return grad(params, rng, *batch)

    def local(params: Any, rng: jax.Array | None, *batch: jax.Array) -> tuple[jax.Array, Any]:
        if rng is not None:
            rng = jax.random.fold_in(rng, jax.lax.axis_index(DATA_AXIS))
        loss, grads = grad(params, rng, *batch)
        flat, unravel = ravel_pytree(grads)
        total = jax.lax.psum(jnp.concatenate([flat, loss[None].astype(flat.dtype)]), DATA_AXIS)
        return total[-1].astype(loss.dtype), unravel(total[:-1])

    spec = PartitionSpec(DATA_AXIS)
    return jax.shard_map(
        local,
        mesh=mesh,
        in_specs=(PartitionSpec(), PartitionSpec(), *(spec for _ in batch)),
        out_specs=(PartitionSpec(), PartitionSpec()),
        # The models' hand-written gradients (``custom_vjp``) do not carry the
        # replicated/varying types that checking needs; the psum replicates by itself.
        check_vma=False,
    )(params, rng, *batch)
