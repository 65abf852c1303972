"""A serving copy of a classifier's latest checkpoint: what ``read`` and ``evaluate`` load.

Orbax keeps the training state (resumable, several epochs); a reader needs only the
parameters and the metadata. Importing Orbax and restoring through it costs about half a
second, a large share of reading one photo, so training also writes ``model.npz`` beside
the checkpoints: the parameters flattened by path plus the checkpoint's metadata, tied to
its epoch. A copy that is missing, unreadable or older than the latest checkpoint is
ignored and the checkpoint is restored instead (``inference.load_classifier``).
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from digits_jax import trees
from digits_jax.checkpoints import CHECKPOINT_SUBDIR, read_latest

FILE = "model.npz"
_META = "__meta__"


def latest_checkpoint_epoch(workdir: str | Path) -> int | None:
    """The newest finished checkpoint's epoch, read off the directory names (Orbax writes
    a checkpoint under a temporary name and renames it to its step when it is complete)."""
    try:
        names = [p.name for p in (Path(workdir) / CHECKPOINT_SUBDIR).iterdir() if p.is_dir()]
    except OSError:
        return None
    epochs = [int(name) for name in names if name.isdigit()]
    return max(epochs, default=None)


def flatten(tree: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """A nested dict of arrays as {"a/b/c": NumPy array} (``trees.flatten``)."""
    return {path: np.asarray(leaf) for path, leaf in trees.flatten(tree).items()}


def to_numpy(tree: Mapping[str, Any]) -> dict[str, Any]:
    """The same nested dict with every leaf a NumPy array (device arrays copied over)."""
    return trees.unflatten(flatten(tree))


def write_atomically(path: Path, data: bytes) -> Path:
    """Writes a file beside the checkpoints so that a reader sees the old version or the
    new, never half of one (training may rewrite it while ``read`` loads it)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path


def save(workdir: str | Path, params: Mapping[str, Any], meta: Mapping[str, Any]) -> Path:
    """Writes ``model.npz`` (atomically)."""
    buffer = io.BytesIO()
    np.savez(buffer, **flatten(params), **{_META: np.array(json.dumps(dict(meta)))})
    return write_atomically(Path(workdir) / FILE, buffer.getvalue())


def load(workdir: str | Path) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(params, meta) from ``model.npz`` when it holds the latest checkpoint; else None."""
    path = Path(workdir) / FILE
    try:
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(str(npz[_META]))
            flat = {key: npz[key] for key in npz.files if key != _META}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    if not isinstance(meta, dict) or meta.get("epoch") != latest_checkpoint_epoch(workdir):
        return None
    return trees.unflatten(flat), meta


def ensure(workdir: str | Path) -> Path:
    """Writes the serving copy of the latest checkpoint unless it is already there."""
    if load(workdir) is not None:
        return Path(workdir) / FILE
    return save(workdir, *read_latest(workdir))
