"""Flattening parameter trees to paths, and naming the first path where two differ."""

import numpy as np
import pytest
from flax.core import FrozenDict

from digits_jax import trees


def test_flatten_round_trip():
    tree = {"a": {"b": np.arange(3), "c": {"d": np.ones((2, 2))}}, "e": np.zeros(1)}
    flat = trees.flatten(tree)
    assert sorted(flat) == ["a/b", "a/c/d", "e"]
    assert flat["a/b"] is tree["a"]["b"]  # leaves as they are
    back = trees.unflatten(flat)
    assert np.array_equal(back["a"]["c"]["d"], tree["a"]["c"]["d"])
    assert sorted(trees.flatten(FrozenDict(tree))) == sorted(flat)
    with pytest.raises(ValueError, match="contains"):
        trees.flatten({"a/b": np.zeros(1)})


def test_first_mismatch_names_the_first_differing_path():
    want = {"head": {"bias": np.zeros(10, np.float32), "kernel": np.zeros((4, 10), np.float32)}}
    assert trees.first_mismatch(want, want) is None
    assert trees.first_mismatch(want, {"head": {"kernel": want["head"]["kernel"]}}) == (
        "head/bias: missing in the donor"
    )
    extra = {"head": {**want["head"], "extra": np.zeros(1)}}
    assert trees.first_mismatch(want, extra, source="checkpoint") == (
        "head/extra: unexpected in the checkpoint"
    )
    short = {"head": {**want["head"], "kernel": np.zeros((2, 10), np.float32)}}
    assert trees.first_mismatch(want, short, root="model") == (
        "model/head/kernel: shape (2, 10) where (4, 10) is expected"
    )
    wide = {"head": {**want["head"], "bias": np.zeros(10, np.float64)}}
    assert trees.first_mismatch(want, wide) == (
        "head/bias: dtype float64 where float32 is expected"
    )
    # Specs and Python scalars compare by shape and dtype too.
    specs = {
        "head": {
            "bias": trees.Spec((10,), np.dtype(np.float32)),
            "kernel": trees.Spec((4, 10), np.dtype(np.float32)),
        }
    }
    assert trees.first_mismatch(specs, want) is None
    assert trees.first_mismatch({"step": 0}, {"step": 5}) is None
