"""Data augmentation on the device, inside the compiled training step.

Each function maps a batch of float images (B, 28, 28, 1) in [0, 1] and a PRNG
key to a batch of the same shape and range, is the identity at zero strength,
and is deterministic for a given key.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections


def random_shift(rng: jax.Array, images: jax.Array, max_shift: int) -> jax.Array:
    """Translates each image by up to ``max_shift`` pixels in x and y, filling with black."""
    if max_shift <= 0:
        return images
    b, h, w, _ = images.shape
    padded = jnp.pad(images, ((0, 0), (max_shift, max_shift), (max_shift, max_shift), (0, 0)))
    offsets = jax.random.randint(rng, (b, 2), 0, 2 * max_shift + 1)

    def crop(image: jax.Array, offset: jax.Array) -> jax.Array:
        return jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), (h, w, image.shape[-1]))

    return jax.vmap(crop)(padded, offsets)


def augment(rng: jax.Array, images: jax.Array, config: ml_collections.ConfigDict) -> jax.Array:
    """Applies the augmentations the config switches on."""
    return random_shift(rng, images, config.augment_shift)
