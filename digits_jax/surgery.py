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
from flax.core import unfreeze

from digits_jax.errors import DigitsJaxError
from digits_jax.trees import first_mismatch

if TYPE_CHECKING:
    import optax

ENCODER = "encoder"

Params = Mapping[str, Any]


class GraftError(DigitsJaxError):
    """The donor's encoder does not fit the recipient's."""


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
