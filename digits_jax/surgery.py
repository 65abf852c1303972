"""Pytree surgery: graft the DAE's encoder into the classifier, or freeze it.

The original initialises its classifier's encoder from the pretrained DAE. Here
that is a pure function over parameter pytrees, with a strict check of tree
structure, shapes and dtypes so a checkpoint of another architecture is refused
with the first path that differs, never silently half-copied.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import jax
import numpy as np
from flax.core import FrozenDict, unfreeze

from digits_jax.errors import DigitsJaxError

if TYPE_CHECKING:
    import optax

ENCODER = "encoder"

Params = Mapping[str, Any]


class GraftError(DigitsJaxError):
    """The donor's encoder does not fit the recipient's."""


def _flat(tree: Any) -> dict[str, Any]:
    """Flattens a nested mapping into ``{"a/b/c": leaf}``."""
    out: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, Mapping | FrozenDict):
            for key in sorted(node):
                walk(node[key], f"{prefix}/{key}" if prefix else str(key))
        else:
            out[prefix] = node

    walk(tree, "")
    return out


def _spec(leaf: Any) -> jax.ShapeDtypeStruct:
    """Shape and dtype of an array, a Python scalar or an abstract array."""
    if not hasattr(leaf, "shape") or not hasattr(leaf, "dtype"):
        leaf = np.asarray(leaf)
    return jax.ShapeDtypeStruct(tuple(leaf.shape), np.dtype(leaf.dtype))


def first_mismatch(expected: Any, actual: Any, root: str = "") -> str | None:
    """Describes the first path where two parameter trees differ, or returns None."""
    want, got = _flat(expected), _flat(actual)
    for path in sorted(set(want) | set(got)):
        where = f"{root}/{path}" if root else path
        if path not in got:
            return f"{where}: missing in the donor"
        if path not in want:
            return f"{where}: unexpected in the donor"
        a, b = _spec(want[path]), _spec(got[path])
        if a.shape != b.shape:
            return f"{where}: shape {b.shape} where {a.shape} is expected"
        if a.dtype != b.dtype:
            return f"{where}: dtype {b.dtype} where {a.dtype} is expected"
    return None


def graft_encoder(classifier_params: Params, dae_params: Params) -> dict[str, Any]:
    """Returns classifier parameters whose ``encoder`` subtree is the DAE's.

    Raises :class:`GraftError` naming the first differing path when the DAE's
    encoder does not match the classifier's in structure, shape or dtype.
    """
    for name, tree in (("classifier", classifier_params), ("DAE", dae_params)):
        if ENCODER not in tree:
            raise GraftError(f"the {name} parameters have no '{ENCODER}' subtree")
    problem = first_mismatch(classifier_params[ENCODER], dae_params[ENCODER], root=ENCODER)
    if problem:
        raise GraftError(f"cannot graft the DAE encoder: {problem}")
    grafted = dict(unfreeze(classifier_params))
    grafted[ENCODER] = jax.tree.map(lambda x: x, unfreeze(dae_params[ENCODER]))
    return grafted


def encoder_mask(params: Params) -> dict[str, Any]:
    """A pytree of booleans, True on the encoder's leaves."""
    return {
        key: jax.tree.map(lambda _, inside=(key == ENCODER): inside, value)
        for key, value in params.items()
    }


def freeze_encoder(tx: optax.GradientTransformation) -> optax.GradientTransformation:
    """Wraps an optimizer so that the encoder's parameters never change."""
    import optax  # training only: loading a model to read digits need not import it

    def labels(params: Params) -> dict[str, Any]:
        return jax.tree.map(lambda frozen: "frozen" if frozen else "trained", encoder_mask(params))

    return optax.multi_transform({"trained": tx, "frozen": optax.set_to_zero()}, labels)
