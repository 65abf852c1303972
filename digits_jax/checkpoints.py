"""Orbax checkpoints of a training workdir: state, config and task, one per epoch.

The training state is saved as a plain state dict (``flax.serialization``), so a
restore can be checked leaf by leaf against the state the current config builds
before anything is loaded into it. Orbax is imported when a workdir's checkpoints are
opened (flax when a state is saved or restored), not with this module: reading a photo
loads the serving copy (``export``) and needs neither.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from digits_jax.errors import DigitsJaxError
from digits_jax.trees import first_mismatch

CHECKPOINT_SUBDIR = "checkpoints"

# Orbax logs every save at INFO level; a progress bar is enough.
logging.getLogger("absl").setLevel(logging.WARNING)


def _orbax() -> Any:
    import orbax.checkpoint as ocp

    return ocp


class CheckpointError(DigitsJaxError):
    """A workdir's checkpoints are missing or do not fit."""


class Checkpoints:
    """The checkpoints of one workdir, keyed by epoch."""

    def __init__(self, workdir: str | Path, keep: int = 3, create: bool = True):
        self.directory = Path(workdir).resolve() / CHECKPOINT_SUBDIR
        if not create and not self.directory.is_dir():
            raise CheckpointError(f"no checkpoints in {Path(workdir)} (train there first)")
        ocp = self._ocp = _orbax()
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=create)
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_epoch(self) -> int | None:
        return self.manager.latest_step()

    def save(self, epoch: int, state: Any, meta: dict[str, Any]) -> None:
        """Saves the state and its metadata (task, config) for ``epoch``; waits until written."""
        from flax import serialization

        ocp = self._ocp
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(serialization.to_state_dict(state)),
            meta=ocp.args.JsonSave(meta),
        )
        self.manager.save(epoch, args=args)
        self.manager.wait_until_finished()

    def _epoch(self, epoch: int | None) -> int:
        epoch = self.latest_epoch() if epoch is None else epoch
        if epoch is None:
            raise CheckpointError(f"no checkpoint in {self.directory.parent}")
        return epoch

    def meta(self, epoch: int | None = None) -> dict[str, Any]:
        """The metadata saved with a checkpoint (latest by default)."""
        epoch = self._epoch(epoch)
        args = self._ocp.args
        restored = self.manager.restore(epoch, args=args.Composite(meta=args.JsonRestore()))
        return dict(restored["meta"])

    def raw_state(self, epoch: int | None = None) -> dict[str, Any]:
        """The saved state dict as arrays, without a target to check it against."""
        import jax

        epoch = self._epoch(epoch)
        args = self._ocp.args
        # A state saved over several devices (data parallelism) comes back on this
        # process's first device when those devices are not here.
        here = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        restore = args.StandardRestore(fallback_sharding=here)
        restored = self.manager.restore(epoch, args=args.Composite(state=restore))
        return restored["state"]

    def restore(self, target: Any, epoch: int | None = None) -> Any:
        """Restores into ``target``'s structure; refuses a checkpoint that does not fit it."""
        from flax import serialization

        raw = self.raw_state(epoch)
        expected = serialization.to_state_dict(target)
        problem = first_mismatch(_arrays(expected), _arrays(raw))
        if problem:
            raise CheckpointError(
                f"the checkpoint in {self.directory.parent} does not fit this config ({problem})"
            )
        return serialization.from_state_dict(target, raw)

    def close(self) -> None:
        self.manager.close()


def read_latest(workdir: str | Path) -> tuple[Any, dict[str, Any]]:
    """The latest checkpoint's parameters and metadata, without a target to check against."""
    ckpts = Checkpoints(workdir, create=False)
    try:
        return ckpts.raw_state()["params"], ckpts.meta()
    finally:
        ckpts.close()


def _arrays(tree: Any) -> Any:
    """Drops empty containers, which a saved state dict does not keep."""
    if isinstance(tree, dict):
        kept = {k: _arrays(v) for k, v in tree.items()}
        return {k: v for k, v in kept.items() if not (isinstance(v, dict) and not v)}
    return tree
