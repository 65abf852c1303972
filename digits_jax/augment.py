"""Data augmentation on the device, inside the compiled training step.

Each function maps a batch of float images (B, 28, 28, 1) in [0, 1] and a PRNG
key to a batch of the same shape and range, is the identity at zero strength,
and is deterministic for a given key. The geometric ones (affine and elastic)
build one sampling grid per image and resample once, bilinearly.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

SIZE = 28


def random_shift(rng: jax.Array, images: jax.Array, max_shift: int) -> jax.Array:
    """Translates each image by up to ``max_shift`` whole pixels in x and y, filling with black."""
    if max_shift <= 0:
        return images
    b, h, w, _ = images.shape
    padded = jnp.pad(images, ((0, 0), (max_shift, max_shift), (max_shift, max_shift), (0, 0)))
    offsets = jax.random.randint(rng, (b, 2), 0, 2 * max_shift + 1)

    def crop(image: jax.Array, offset: jax.Array) -> jax.Array:
        return jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), (h, w, image.shape[-1]))

    return jax.vmap(crop)(padded, offsets)


def _affine(rot: jax.Array, zoom: jax.Array, shear: jax.Array, shift: jax.Array) -> jax.Array:
    """(B, 2, 3) maps from output to input pixel coordinates (row, col), about the centre.

    Angles in radians; the forward transform is rotate(shear(zoom(p))) + shift.
    """
    cos, sin, tan = jnp.cos(rot), jnp.sin(rot), jnp.tan(shear)
    forward = jnp.stack(
        [
            jnp.stack([cos * zoom, (cos * tan - sin) * zoom], -1),
            jnp.stack([sin * zoom, (sin * tan + cos) * zoom], -1),
        ],
        -2,
    )
    # Closed-form 2x2 inverse: jnp.linalg.inv runs an LU loop per image on the CPU.
    (a, b), (c, d) = forward[:, 0].T, forward[:, 1].T
    inverse = jnp.stack([jnp.stack([d, -b], -1), jnp.stack([-c, a], -1)], -2)
    inverse = inverse / (a * d - b * c)[:, None, None]
    centre = jnp.full((2,), (SIZE - 1) / 2)
    offset = centre - jnp.einsum("bij,bj->bi", inverse, centre + shift)
    return jnp.concatenate([inverse, offset[..., None]], axis=-1)


def affine_matrices(
    rng: jax.Array,
    batch: int,
    rotation_deg: float = 0.0,
    scale: float = 0.0,
    shear_deg: float = 0.0,
    translate: float = 0.0,
) -> jax.Array:
    """Random (B, 2, 3) sampling maps: rotation and shear uniform in +-degrees, the zoom
    uniform in [1 - scale, 1 + scale], the translation uniform in +-pixels."""
    # One draw for all five parameters: each threefry call costs far more on the CPU
    # than the numbers it makes.
    u = jax.random.uniform(rng, (batch, 5), minval=-1, maxval=1)
    return _affine(
        jnp.deg2rad(rotation_deg) * u[:, 0],
        1 + scale * u[:, 1],
        jnp.deg2rad(shear_deg) * u[:, 2],
        translate * u[:, 3:],
    )


def _grid() -> jax.Array:
    grid = jnp.stack(jnp.meshgrid(jnp.arange(SIZE), jnp.arange(SIZE), indexing="ij"))
    return grid.reshape(2, -1).astype(jnp.float32)


def _warp(images: jax.Array, m: jax.Array, displacement: jax.Array | None = None) -> jax.Array:
    coords = jnp.einsum("bij,jn->bin", m[..., :2], _grid()) + m[..., 2:]
    coords = coords.reshape(images.shape[0], 2, SIZE, SIZE)
    if displacement is not None:
        coords = coords + displacement
    return jnp.clip(bilinear_sample(images, coords), 0.0, 1.0)


# Test-time augmentation: the identity first, then small fixed transforms
# (rotation in degrees, zoom, shift in pixels as (row, col)).
TTA_VIEWS = (
    (0.0, 1.0, (0.0, 0.0)),
    (7.0, 1.0, (0.0, 0.0)),
    (-7.0, 1.0, (0.0, 0.0)),
    (0.0, 1.08, (0.0, 0.0)),
    (0.0, 0.92, (0.0, 0.0)),
    (0.0, 1.0, (1.0, 0.0)),
    (0.0, 1.0, (-1.0, 0.0)),
    (0.0, 1.0, (0.0, 1.0)),
    (0.0, 1.0, (0.0, -1.0)),
)


def tta_view(images: jax.Array, index: int) -> jax.Array:
    """The ``index``-th fixed test-time view of a batch (0 is the batch itself)."""
    rotation, zoom, shift = TTA_VIEWS[index]
    if index == 0:
        return images
    b = images.shape[0]
    m = _affine(
        jnp.full((b,), jnp.deg2rad(rotation)),
        jnp.full((b,), zoom),
        jnp.zeros((b,)),
        jnp.broadcast_to(jnp.asarray(shift), (b, 2)),
    )
    return _warp(images, m)


def _smoothing_matrix(sigma: float) -> jax.Array:
    """(28, n) matrix that Gaussian-blurs noise on ``n`` nodes of a line onto its 28 pixels.

    The nodes are ``min(sigma, 4)`` pixels apart: a blur of that sigma keeps
    nothing finer, and drawing 16x fewer random numbers (threefry is slow on a
    CPU) made the field several times cheaper than per-pixel noise.
    """
    spacing = int(min(max(sigma, 1.0), 4.0))
    pixels = jnp.arange(SIZE, dtype=jnp.float32)
    nodes = jnp.arange(spacing / 2 - 0.5, SIZE, spacing, dtype=jnp.float32)
    g = jnp.exp(-0.5 * ((pixels[:, None] - nodes[None, :]) / sigma) ** 2)
    return g / g.sum(axis=1, keepdims=True)


def elastic_displacements(rng: jax.Array, batch: int, alpha: float, sigma: float) -> jax.Array:
    """Smooth random displacement fields (B, 2, 28, 28) in pixels (Simard et al. 2003).

    Uniform noise in [-1, 1] on a coarse grid of nodes, Gaussian-blurred onto
    the pixels, scaled to ``alpha`` pixels at its largest.
    """
    g = _smoothing_matrix(sigma)
    n = g.shape[1]
    noise = jax.random.uniform(rng, (batch, 2, n, n), minval=-1, maxval=1)
    field = jnp.einsum("in,bcnm,jm->bcij", g, noise, g)
    peak = jnp.max(jnp.abs(field), axis=(2, 3), keepdims=True)
    return alpha * field / (peak + 1e-6)


def bilinear_sample(images: jax.Array, coords: jax.Array) -> jax.Array:
    """Samples (B, 28, 28, 1) images at (B, 2, 28, 28) input coordinates; black outside.

    Each pixel's 2x2 neighbourhood is stacked first, so one flat gather of
    4-vectors per output pixel does the work: XLA's CPU gathers cost per index,
    and this is several times faster than four scalar gathers or
    ``map_coordinates``.
    """
    b = images.shape[0]
    p = jnp.pad(images.reshape(b, SIZE, SIZE), ((0, 0), (1, 1), (1, 1)))
    n = SIZE + 1  # corners (r, c) of 2x2 blocks of the padded image, r and c in [0, 28]
    quads = jnp.stack([p[:, :-1, :-1], p[:, :-1, 1:], p[:, 1:, :-1], p[:, 1:, 1:]], axis=-1)
    quads = quads.reshape(b, n * n, 4)
    rows, cols = coords[:, 0].reshape(b, -1), coords[:, 1].reshape(b, -1)
    r0, c0 = jnp.floor(rows), jnp.floor(cols)
    fr, fc = rows - r0, cols - c0
    r0, c0 = r0.astype(jnp.int32) + 1, c0.astype(jnp.int32) + 1  # padded coordinates
    inside = (r0 >= 0) & (r0 < n) & (c0 >= 0) & (c0 < n)
    idx = jnp.clip(r0, 0, n - 1) * n + jnp.clip(c0, 0, n - 1)
    taps = jnp.take_along_axis(quads, idx[..., None], axis=1)  # (B, 784, 4)
    # The four taps' weighted sum written out: as a reduction over an axis of 4, XLA's
    # CPU backend made it a library call (the affine warp of 64 digits alone took
    # 0.43 ms that way, 0.31 ms this way; inside the train step XLA fuses both alike).
    top = taps[..., 0] * (1 - fc) + taps[..., 1] * fc
    bottom = taps[..., 2] * (1 - fc) + taps[..., 3] * fc
    out = jnp.where(inside, top * (1 - fr) + bottom * fr, 0.0)
    return out.reshape(images.shape)


def random_geometry(
    rng: jax.Array,
    images: jax.Array,
    rotation_deg: float = 0.0,
    scale: float = 0.0,
    shear_deg: float = 0.0,
    translate: float = 0.0,
    elastic_alpha: float = 0.0,
    elastic_sigma: float = 4.0,
) -> jax.Array:
    """Random affine transform plus elastic distortion, resampled once."""
    if not any((rotation_deg, scale, shear_deg, translate, elastic_alpha)):
        return images
    batch = images.shape[0]
    k_affine, k_elastic = jax.random.split(rng)
    m = affine_matrices(k_affine, batch, rotation_deg, scale, shear_deg, translate)
    displacement = None
    if elastic_alpha:
        displacement = elastic_displacements(k_elastic, batch, elastic_alpha, elastic_sigma)
    return _warp(images, m, displacement)


def max_3x3(images: jax.Array) -> jax.Array:
    """3x3 max filter of (B, H, W, C), "SAME" size, as two passes of three shifted slices.

    The same values as ``lax.reduce_window`` with a 3x3 window, which XLA's CPU
    backend ran 3x slower (0.27 against 0.09 ms for 64 digits); the two windows
    were a third of the augmentation's cost in the train step.
    """
    p = jnp.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-jnp.inf)
    rows = jnp.maximum(jnp.maximum(p[:, :-2], p[:, 1:-1]), p[:, 2:])
    return jnp.maximum(jnp.maximum(rows[:, :, :-2], rows[:, :, 1:-1]), rows[:, :, 2:])


def random_stroke_width(rng: jax.Array, images: jax.Array, probability: float) -> jax.Array:
    """Thickens (3x3 dilation) or thins (3x3 erosion) each image with ``probability`` each.

    A digit already so thin that erosion would remove over half its ink is left as it is.
    """
    if probability <= 0:
        return images
    thick, thin = max_3x3(images), -max_3x3(-images)
    ink = lambda x: jnp.sum(x, axis=(1, 2, 3), keepdims=True)  # noqa: E731
    thin = jnp.where(ink(thin) >= 0.5 * ink(images), thin, images)
    u = jax.random.uniform(rng, (images.shape[0], 1, 1, 1))
    return jnp.where(u < probability, thick, jnp.where(u < 2 * probability, thin, images))


def augment(rng: jax.Array, images: jax.Array, config: ml_collections.ConfigDict) -> jax.Array:
    """Applies the augmentations the config switches on (all off: the identity)."""
    # The shift keeps ``rng`` itself, so shift-only configs reproduce earlier runs.
    k_geometry, k_stroke = jax.random.fold_in(rng, 1), jax.random.fold_in(rng, 2)
    images = random_stroke_width(k_stroke, images, config.augment_stroke)
    images = random_geometry(
        k_geometry,
        images,
        rotation_deg=config.augment_rotation,
        scale=config.augment_scale,
        shear_deg=config.augment_shear,
        translate=config.augment_translate,
        elastic_alpha=config.augment_elastic_alpha,
        elastic_sigma=config.augment_elastic_sigma,
    )
    return random_shift(rng, images, config.augment_shift)
