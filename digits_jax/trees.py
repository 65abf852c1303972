"""Parameter trees as paths: flattening nested dicts and naming where two trees differ.

Pure Python and NumPy, so the reader's start-up (``inference`` on the NumPy backend)
can check a model's parameters without importing JAX. Grafting (``surgery``), restoring
checkpoints and loading a model for reading all refuse a tree that does not fit with
the first path that differs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

SEP = "/"


class Spec(NamedTuple):
    """A leaf's shape and dtype (what ``first_mismatch`` compares)."""

    shape: tuple[int, ...]
    dtype: np.dtype


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested mapping (dicts, flax FrozenDicts) as {"a/b/c": leaf}, leaves as they are."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if SEP in str(key):
            raise ValueError(f"parameter name {key!r} contains {SEP!r}")
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, path + SEP))
        else:
            flat[path] = value
    return flat


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """The inverse of ``flatten``."""
    tree: dict[str, Any] = {}
    for path, value in flat.items():
        *parents, leaf = path.split(SEP)
        node = tree
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return tree


def spec(leaf: Any) -> Spec:
    """Shape and dtype of an array, an abstract array or a Python scalar."""
    if not hasattr(leaf, "shape") or not hasattr(leaf, "dtype"):
        leaf = np.asarray(leaf)
    return Spec(tuple(leaf.shape), np.dtype(leaf.dtype))


def first_mismatch(
    expected: Mapping[str, Any], actual: Mapping[str, Any], root: str = "", source: str = "donor"
) -> str | None:
    """Describes the first path (in sorted order) where ``actual`` differs from
    ``expected`` in structure, shape or dtype, or returns None; ``source`` names where
    ``actual`` came from in the message."""
    want, got = flatten(expected), flatten(actual)
    for path in sorted(set(want) | set(got)):
        where = f"{root}/{path}" if root else path
        if path not in got:
            return f"{where}: missing in the {source}"
        if path not in want:
            return f"{where}: unexpected in the {source}"
        a, b = spec(want[path]), spec(got[path])
        if a.shape != b.shape:
            return f"{where}: shape {b.shape} where {a.shape} is expected"
        if a.dtype != b.dtype:
            return f"{where}: dtype {b.dtype} where {a.dtype} is expected"
    return None
