"""MNIST on the device: the split lives there as uint8 and is batched there.

A training epoch needs only a permutation of indices from the host side; the
gather and the conversion to float happen inside the compiled step.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class DeviceSplit:
    """One split held in device memory: uint8 images (N, 28, 28), int32 labels (N,)."""

    images: jax.Array
    labels: jax.Array

    @property
    def size(self) -> int:
        return int(self.labels.shape[0])


def device_split(images: np.ndarray, labels: np.ndarray, limit: int = 0) -> DeviceSplit:
    """Puts a split (its first ``limit`` examples when ``limit`` > 0) on the device."""
    if limit:
        images, labels = images[:limit], labels[:limit]
    return DeviceSplit(jnp.asarray(images, jnp.uint8), jnp.asarray(labels, jnp.int32))


def split_off(split: DeviceSplit, n: int) -> tuple[DeviceSplit, DeviceSplit]:
    """The first ``size - n`` examples and the last ``n`` (a held-out part)."""
    if not 0 < n < split.size:
        raise ValueError(f"cannot hold out {n} of {split.size} examples")
    cut = split.size - n
    return (
        DeviceSplit(split.images[:cut], split.labels[:cut]),
        DeviceSplit(split.images[cut:], split.labels[cut:]),
    )


def load_device_split(split: str, limit: int = 0) -> DeviceSplit:
    """Loads an MNIST split through TFDS and puts it on the device."""
    from digits_jax import data  # TFDS is slow to import; only loading needs it

    images, labels = data.load_split(split)
    return device_split(images, labels, limit)


def to_float(images: jax.Array) -> jax.Array:
    """uint8 (..., 28, 28) -> float32 (..., 28, 28, 1) in [0, 1]."""
    return (images.astype(jnp.float32) / 255.0)[..., None]


def epoch_indices(rng: jax.Array, num_examples: int, batch_size: int) -> jax.Array:
    """A shuffled (steps, batch_size) index array; the last partial batch is dropped."""
    steps = num_examples // batch_size
    perm = jax.random.permutation(rng, num_examples)
    return perm[: steps * batch_size].reshape(steps, batch_size)


def eval_batches(num_examples: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (batches, batch_size) covering every example once, and a 0/1 weight mask.

    The last batch is padded with index 0 and weight 0 so every batch has one shape.
    """
    batch_size = min(batch_size, num_examples)
    batches = -(-num_examples // batch_size)
    idx = np.arange(batches * batch_size)
    mask = (idx < num_examples).astype(np.float32)
    idx = np.where(idx < num_examples, idx, 0)
    return idx.reshape(batches, batch_size), mask.reshape(batches, batch_size)
