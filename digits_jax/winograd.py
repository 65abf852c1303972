"""A 5x5 convolution and 2x2 max pooling by Winograd's minimal filtering, F(4x4, 5x5).

Why: the encoder's second convolution (16 -> 32 channels) is most of a training
step's multiplications, and on the CPU its cost is the traffic of the tensors the
phase form (:class:`digits_jax.models.PhaseConvPool`) builds, 36 values per input
channel for every pooled pixel. Winograd's algorithm computes each 4x4 block of
outputs (four pooling windows) from an 8x8 block of input through 64 elementwise
products summed over the input channels: 16 values per pooled pixel and 4x fewer
multiplications in the channel sums. The classifier's float32 step trains about 1.45x
as fast and the DAE's 1.3x (docs/benchmarks.md, "Stop 30").

The transforms are exact in real arithmetic; interpolation points 0, +-1, +-2, +-1/2
and infinity keep float32's error near a direct convolution's (about 4e-6 of the
output's scale). The kernel stays ``nn.Conv``'s (5, 5, in, out): checkpoints are
interchangeable with every other implementation.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import jax
import jax.numpy as jnp
import numpy as np

KERNEL = 5  # the kernel size these transforms are for
TILE = 4  # outputs per side of a tile: 2x2 pooling windows
WINDOW = TILE + KERNEL - 1  # input pixels per side of a tile
POINTS = (0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5)  # and infinity


def fits(kernel_shape: tuple[int, ...], height: int, width: int) -> bool:
    """Whether a VALID 5x5 convolution of a (height, width) image tiles into 4x4 blocks.

    The input is folded into 4x4 cells, so its sides must be multiples of 4 too.
    """
    kh, kw, in_features, _ = kernel_shape
    sides_fit = all(s % TILE == 0 and (s - KERNEL + 1) % TILE == 0 for s in (height, width))
    # With one input channel there is no channel sum to share: the phase form is cheaper.
    return (kh, kw) == (KERNEL, KERNEL) and in_features > 1 and sides_fit


def matrices_1d() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Toom-Cook matrices ``at`` (TILE, WINDOW), ``g`` (WINDOW, KERNEL), ``bt`` (WINDOW, WINDOW).

    For a window ``d`` of WINDOW inputs and a kernel ``k``, the TILE correlations
    ``y[i] = sum_j d[i + j] k[j]`` are ``at @ ((g @ k) * (bt @ d))``. ``at`` and ``g``
    evaluate polynomials at the points (the last row: the leading coefficient, the
    point at infinity), ``g``'s rows scaled by the Lagrange denominators; ``bt``
    then follows from those identities, one linear system per input.
    """
    p = np.asarray(POINTS)
    n = len(p)  # finite points; WINDOW = n + 1
    at = np.zeros((TILE, WINDOW))
    at[:, :n] = p[None, :] ** np.arange(TILE)[:, None]
    at[TILE - 1, n] = 1.0
    denominators = np.array([np.prod([pk - pl for pl in p if pl != pk]) for pk in p])
    g = np.zeros((WINDOW, KERNEL))
    g[:n] = p[:, None] ** np.arange(KERNEL)[None, :] / denominators[:, None]
    g[n, KERNEL - 1] = 1.0
    # sum_k at[i,k] g[k,j] bt[k,l] = [l == i + j] depends on s = i + j only: powers
    # s < n fix bt's finite rows, s = n its last row.
    vandermonde = (p[None, :] ** np.arange(n)[:, None]) / denominators[None, :]
    bt = np.zeros((WINDOW, WINDOW))
    bt[:n] = np.linalg.solve(vandermonde, np.eye(n, WINDOW))
    last = (p**n / denominators) @ bt[:n]
    bt[n] = np.eye(WINDOW)[n] - last
    return at, g, bt


@cache
def matrices_2d() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 2-D transforms as float32 matrices over flattened tiles.

    ``inputs`` (WINDOW^2, WINDOW^2): columns in the order of :func:`_windows`' rows
    (cell (a, c) of the 4x4-folded input, sub-pixel (r, s): pixel (4a + r, 4c + s)).
    ``outputs`` (TILE^2, WINDOW^2): rows ordered (position in the pooling window,
    window), so the pool is a max over four row groups. ``kernel`` (WINDOW^2,
    KERNEL^2).
    """
    at, g, bt = matrices_1d()
    cells, half = WINDOW // TILE, TILE // 2
    bt_by_cell = bt.reshape(WINDOW, cells, TILE)  # pixel 4a + r -> (a, r)
    inputs = np.einsum("kar,lcs->klacrs", bt_by_cell, bt_by_cell)
    at_by_window = at.reshape(half, 2, WINDOW)  # output 2w + p -> (w, p)
    outputs = np.einsum("wpk,vql->pqwvkl", at_by_window, at_by_window)
    kernel = np.einsum("ki,lj->klij", g, g)
    return tuple(
        m.reshape(rows, -1).astype(np.float32)
        for m, rows in ((inputs, WINDOW**2), (outputs, TILE**2), (kernel, WINDOW**2))
    )


def fold(x: jax.Array) -> jax.Array:
    """(B, H, W, C) -> (4, 4, B, H/4, W/4, C): the 4x4 cells' sub-pixels in front."""
    b, h, w, c = x.shape
    return x.reshape(b, h // TILE, TILE, w // TILE, TILE, c).transpose(2, 4, 0, 1, 3, 5)


def _windows(cells: jax.Array) -> jax.Array:
    """Folded input -> (WINDOW^2, tiles * C): each tile's 8x8 window, as 2x2 cells.

    Tile (i, j) reads cells (i + a, j + c) for a, c in {0, 1}: four slices of whole
    cells, whose gradient is four pads added (strided slices of 2x2 cells made
    sixteen, 0.7 ms of a 7 ms step).
    """
    *_, b, ch, cw, c = cells.shape
    n = WINDOW // TILE
    th, tw = ch - n + 1, cw - n + 1
    blocks = [cells[:, :, :, a : a + th, s : s + tw, :] for a in range(n) for s in range(n)]
    return jnp.stack(blocks).reshape(WINDOW**2, b * th * tw * c)


def _channel_sums(v: jax.Array, u: jax.Array) -> jax.Array:
    """(P, M, C) x (P, C, F) -> (P, M, F): one matmul per transform position."""
    return jnp.einsum("pmc,pcf->pmf", v, u)


def _rows_last(v: jax.Array) -> jax.Array:
    """(P, M, C) -> (P, C, M) as a buffer of its own, so that the kernel gradient is a
    plain batched matmul (contracting both operands' middle axis, XLA's CPU backend
    took a slow path: 1.5 ms against 0.4 ms)."""
    p, m, c = v.shape
    group = 8 if c % 8 == 0 and c > 8 else 1
    return v.reshape(p, m, c // group, group).transpose(0, 2, 3, 1).reshape(p, c, m)


@jax.custom_vjp
def channel_sums(v: jax.Array, u: jax.Array) -> jax.Array:
    """:func:`_channel_sums` with a backward of plain batched matmuls."""
    return _channel_sums(v, u)


def _channel_sums_fwd(v, u):
    return _channel_sums(v, u), (v, u)


def _channel_sums_bwd(residuals, grad):
    v, u = residuals
    return _channel_sums(grad, jnp.swapaxes(u, 1, 2)), _channel_sums(_rows_last(v), grad)


channel_sums.defvjp(_channel_sums_fwd, _channel_sums_bwd)


@jax.custom_vjp
def max4(y: jax.Array) -> jax.Array:
    """The max over ``y``'s leading axis of 4."""
    return jnp.maximum(jnp.maximum(y[0], y[1]), jnp.maximum(y[2], y[3]))


def _max4_fwd(y):
    pooled = max4(y)
    return pooled, (y, pooled)


def first_winners(parts: Sequence[jax.Array], pooled: jax.Array) -> list[jax.Array]:
    """Where each of ``parts`` is the first, in order, to hold ``pooled``, their maximum:
    where a max pool's gradient goes, as ``reduce_window``'s does (also the phase
    form's, :class:`digits_jax.models.PhaseConvPool`)."""
    taken = jnp.zeros(pooled.shape, bool)
    winners = []
    for part in parts:
        wins = (part == pooled) & ~taken
        taken = taken | wins
        winners.append(wins)
    return winners


def _max4_bwd(residuals, grad):
    y, pooled = residuals
    return (jnp.stack([jnp.where(wins, grad, 0) for wins in first_winners(y, pooled)]),)


max4.defvjp(_max4_fwd, _max4_bwd)


def conv_pool(cells: jax.Array, kernel: jax.Array) -> jax.Array:
    """VALID 5x5 convolution then 2x2 max pooling, without the bias.

    ``cells``: the (B, H, W, C) input through :func:`fold` (the caller may
    materialise it); ``kernel``: (5, 5, C, F). Returns (B, (H - 4) / 2, (W - 4) / 2, F).
    """
    inputs, outputs, kernel_map = (jnp.asarray(m) for m in matrices_2d())
    *_, b, ch, cw, c = cells.shape
    features = kernel.shape[-1]
    th, tw = ch - 1, cw - 1  # tiles per side
    rows = b * th * tw
    v = jnp.dot(inputs, _windows(cells)).reshape(WINDOW**2, rows, c)
    u = jnp.dot(kernel_map, kernel.reshape(KERNEL**2, c * features))
    products = channel_sums(v, u.reshape(WINDOW**2, c, features))
    y = jnp.dot(outputs, products.reshape(WINDOW**2, rows * features))
    half = TILE // 2
    pooled = max4(y.reshape(4, half * half, rows * features))
    pooled = pooled.reshape(half, half, b, th, tw, features).transpose(2, 3, 0, 4, 1, 5)
    return pooled.reshape(b, th * half, tw * half, features)
