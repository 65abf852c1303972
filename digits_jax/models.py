"""The original's networks as pure Flax modules: encoder, decoder, DAE and classifier.

Both the DAE and the classifier keep the encoder under the parameter subtree
``encoder`` with the same structure, so one can be grafted into the other
(see :mod:`digits_jax.surgery`).

Convolutions come in two implementations with identical parameter names and
shapes (checkpoints are interchangeable):

* ``"xla"``: ``flax.linen.Conv`` / ``ConvTranspose``;
* ``"unfold"``: the same maths as static slices plus one matmul per layer
  (:class:`PhaseConvPool` for convolution + pooling, :class:`ScatterConvTranspose`),
  which XLA's CPU backend trains an order of magnitude faster for these tiny
  kernels, and an H200 about twice as fast for the classifier and 3 to 8 times for
  the DAE (``digits-jax bench``; docs/benchmarks.md).

On the CPU in float32, ``"unfold"``'s 5x5 layers with several input channels (the
encoder's second) go through Winograd's F(4x4, 5x5) instead (:mod:`digits_jax.winograd`):
the classifier's step 1.45x as fast, the DAE's 1.3x.

``"auto"`` picks ``"unfold"`` for training on the CPU and GPU and ``"xla"`` elsewhere
(TPUs: not measured), and ``"xla"`` for forward-only inference, where XLA's own
convolution is faster on the CPU at large batches and within 7% on the H200.

``matmul_dtype=bfloat16`` (:func:`resolve_matmul_dtype`) rounds the ``unfold`` layers'
matmul operands to bfloat16 in training steps, products summed in float32: on CPUs
with AMX the steps ran 1.2-1.5x faster than float32's phase form, 1.0-1.1x faster than
its Winograd path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache, partial
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from digits_jax import winograd
from digits_jax.config_lib import CONV_IMPLS, MATMUL_DTYPES


def resolve_conv_impl(impl: str, training: bool = True) -> str:
    """Turns ``"auto"`` into the fastest implementation on the default backend, for
    training (forward and backward) or for inference (forward only)."""
    if impl not in CONV_IMPLS:
        raise ValueError(f"conv_impl must be one of {CONV_IMPLS}, got {impl!r}")
    if impl == "auto":
        return "unfold" if training and jax.default_backend() in ("cpu", "gpu") else "xla"
    return impl


@cache
def cpu_has_amx() -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware (AMX-BF16)."""
    try:
        return "amx_bf16" in Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False


def resolve_matmul_dtype(name: str) -> jnp.dtype | None:
    """The unfold layers' matmul operand dtype a config names (None: the activations').

    ``"auto"`` is bfloat16 for training on CPUs with AMX, where it runs about 4x
    float32's rate and trains with the same accuracy 1.0-1.1x as fast as float32's
    Winograd path (1.2-1.5x float32's phase form)
    (docs/benchmarks.md, "Matmuls in bfloat16"), and float32 elsewhere (GPUs already
    use TF32 for float32 matmuls; other CPUs have not been measured).
    """
    if name not in MATMUL_DTYPES:
        raise ValueError(f"matmul_dtype must be one of {MATMUL_DTYPES}, got {name!r}")
    if name == "auto":
        name = "bfloat16" if jax.default_backend() == "cpu" and cpu_has_amx() else "float32"
    return jnp.bfloat16 if name == "bfloat16" else None


# tanh(x) = x * P(x^2) / Q(x^2) on [-9, 9] (beyond, tanh rounds to +-1 in float32): a
# rational fit of this project's (scripts/fit_tanh.py), max error 3.1e-7 in float32, as
# close as XLA's own tanh (2.6e-7).
_TANH_CLAMP = 9.0
_TANH_P = (1.0, 0.13380995, 0.003495551, 2.06084e-05, 1.3353626e-08)
_TANH_Q = (1.0, 0.46714312, 0.025876846, 0.00032855707, 7.776152e-07)


def _horner(coefs: Sequence[float], s: jax.Array) -> jax.Array:
    out = jnp.full_like(s, coefs[-1])
    for c in coefs[-2::-1]:
        out = out * s + c
    return out


def rational_tanh(x: jax.Array, p: Sequence[float], q: Sequence[float]) -> jax.Array:
    """``x P(x^2) / Q(x^2)`` in float32, ``x`` clamped to +-9 and the result to +-1
    (coefficients in ascending powers): :func:`tanh` with its fitted ``P`` and ``Q``."""
    t = jnp.clip(x.astype(jnp.float32), -_TANH_CLAMP, _TANH_CLAMP)
    s = t * t
    # Rounding takes the ratio 1 ulp past 1 near the clamp; tanh never gets there.
    return jnp.clip(t * _horner(p, s) / _horner(q, s), -1.0, 1.0).astype(x.dtype)


@jax.custom_jvp
def tanh(x: jax.Array) -> jax.Array:
    """tanh by multiplies, adds and one divide, which XLA vectorises.

    XLA's CPU tanh took 3-4 ns per element here (not vectorised), so the encoder's
    first tanh cost as much as a matmul; this one is about 10x faster, and the
    classifier and DAE train 5-7% faster (docs/benchmarks.md, "Stop 14"). Its
    derivative is ``1 - tanh(x)^2``, as for ``jnp.tanh``. Computed in float32 whatever
    the input's dtype (in bfloat16 the rational's own rounding errors reached 1e-2).
    """
    return rational_tanh(x, _TANH_P, _TANH_Q)


@tanh.defjvp
def _tanh_jvp(primals: tuple[jax.Array], tangents: tuple[jax.Array]) -> tuple[jax.Array, jax.Array]:
    y = tanh(primals[0])
    return y, (1 - y * y) * tangents[0]


def materialize(x: jax.Array, flag: jax.Array) -> jax.Array:
    """``x``, computed once into a buffer of its own before its consumers read it.

    XLA's CPU fusion recomputes a cheap elementwise producer inside each consumer,
    and :class:`PhaseConvPool` reads its input nine times (one slice per cell): the
    DAE's Gaussian noise was drawn nine times per pixel, a sixth of its step, and the
    fold into cells ran nine times too (now materialised there as well). The
    operand of a conditional is always materialised (``optimization_barrier`` does
    not stop that fusion on the CPU); both branches return ``x`` (they differ, by
    ``+ 0.0``, only so that XLA cannot fold the conditional away). ``flag`` is any
    traced boolean scalar that every device holds; its value does not matter. One
    read from a sharded ``x`` itself would cost a collective. Off the CPU, ``x`` as
    it is: a GPU reads a conditional's predicate back to the host.
    """
    if jax.default_backend() != "cpu":
        return x
    return jax.lax.cond(flag, lambda v: v + 0.0, lambda v: v, x)


def _phase_kernel(kernel: jax.Array) -> jax.Array:
    """The (kh, kw, K, F) kernel as the phase kernels of :class:`PhaseConvPool`, side by side.

    Row ``(a, c, r, s, k)`` reads input cell ``(a, c)`` of the space-to-depth image,
    sub-pixel ``(r, s)``, channel ``k``: offset ``(2a + r, 2c + s)`` in the pooling
    window. Column ``(p, q, f)`` is output phase ``(p, q)``, which reads kernel tap
    ``(i, j)`` at offset ``(i + p, j + q)``: the kernel shifted by the phase and padded
    to the window. By padding, not by a product with a 0/1 tap table, which cost XLA a
    matmul and a transpose each way (3% of the classifier's step).
    """
    kh, kw, in_features, features = kernel.shape
    ta, tc = kh // 2 + 1, kw // 2 + 1  # space-to-depth cells per window
    shifted = [
        jnp.pad(kernel, ((p, 2 * ta - kh - p), (q, 2 * tc - kw - q), (0, 0), (0, 0)))
        for p in range(2)
        for q in range(2)
    ]
    k = jnp.stack(shifted, -2).reshape(ta, 2, tc, 2, in_features, 4, features)
    return k.transpose(0, 2, 1, 3, 4, 5, 6).reshape(ta * tc * 4 * in_features, 4 * features)


def _dot(a: jax.Array, b: jax.Array, dtype: jnp.dtype | None = None) -> jax.Array:
    """``a @ b`` with both operands in ``dtype`` (default: ``a``'s), accumulated in float32,
    returned in ``a``'s dtype.

    Mixed precision done right: on CPUs with AMX, XLA runs bfloat16 operands at about
    4x float32's rate (800-1,150 GFLOP/s on this project's CPU), and the float32
    accumulation keeps the sums as exact as a float32 matmul's.
    """
    op = a.dtype if dtype is None else dtype
    return jnp.dot(a.astype(op), b.astype(op), preferred_element_type=jnp.float32).astype(a.dtype)


def _transpose(x: jax.Array) -> jax.Array:
    """``x.T`` for a matrix, as a buffer of its own that XLA cannot fold into a matmul.

    Folded, the backward's matmuls contract their operands' rows; XLA's CPU backend
    then converts bfloat16 operands to float32 first (a quarter of the AMX rate), and
    in float32 fused the transpose into the max-pool mask (the step's slowest op). A
    transpose between two reshapes is not folded (docs/benchmarks.md, "Matmuls in
    bfloat16").
    """
    rows, cols = x.shape
    group = next((g for g in (16, 8, 4, 2) if cols % g == 0 and cols > g), None)
    if group is None:
        return jax.lax.optimization_barrier(x.T)
    return x.reshape(rows, cols // group, group).transpose(1, 2, 0).reshape(cols, rows)


def _matmul_grads(
    patches: jax.Array, kernel: jax.Array, grad: jax.Array, dtype: jnp.dtype | None
) -> tuple[jax.Array, jax.Array]:
    """Gradients of ``patches @ kernel`` with respect to both, given the output's."""
    kernel_grad = _dot(_transpose(patches), grad, dtype)
    return _dot(grad, _transpose(kernel), dtype), kernel_grad


@partial(jax.custom_vjp, nondiff_argnums=(2,))
def _matmul(patches: jax.Array, kernel: jax.Array, dtype: jnp.dtype | None) -> jax.Array:
    """``patches @ kernel`` (operands in ``dtype``) with a backward XLA's CPU backend runs fast."""
    return _dot(patches, kernel, dtype)


_matmul.defvjp(
    lambda patches, kernel, dtype: (_dot(patches, kernel, dtype), (patches, kernel)),
    lambda dtype, residuals, grad: _matmul_grads(*residuals, grad, dtype),
)


def _four_phases(patches: jax.Array, kernel: jax.Array, dtype: jnp.dtype | None) -> jax.Array:
    return _dot(patches, kernel, dtype).reshape(patches.shape[0], 4, -1)


@partial(jax.custom_vjp, nondiff_argnums=(2,))
def _matmul_max4(patches: jax.Array, kernel: jax.Array, dtype: jnp.dtype | None) -> jax.Array:
    """``(M, K) @ (K, 4F)``, then the max over the four F-wide column groups: (M, F)."""
    return _four_phases(patches, kernel, dtype).max(axis=1)


def _matmul_max4_fwd(patches, kernel, dtype):
    phases = _four_phases(patches, kernel, dtype)
    pooled = phases.max(axis=1)
    return pooled, (patches, kernel, phases, pooled)


def _matmul_max4_bwd(dtype, residuals, grad):
    patches, kernel, phases, pooled = residuals
    # Each pooled gradient goes to the first phase holding the maximum, in window order.
    winners = winograd.first_winners([phases[:, p] for p in range(4)], pooled)
    grad4 = jnp.where(jnp.stack(winners, 1), grad[:, None], 0).reshape(patches.shape[0], -1)
    return _matmul_grads(patches, kernel, grad4, dtype)


_matmul_max4.defvjp(_matmul_max4_fwd, _matmul_max4_bwd)


class PhaseConvPool(nn.Module):
    """A VALID stride-1 convolution (odd kernel) and 2x2 max pooling, as one matmul.

    Same parameters and result as ``max_pool2(nn.Conv(features, kernel_size,
    padding="VALID")(x))`` for even input sizes. The input is folded 2x2 into its
    channels (space to depth); each pooling window is then one row of patches and
    its four outputs are four column groups of one matmul against the phase
    kernels laid side by side, so the pool is a max over those groups. On the CPU
    the classifier trains about 1.5x faster this way than by slicing out all 25 taps
    at every output pixel and pooling afterwards (``digits-jax bench``), though 11 of
    the 36 taps of each phase kernel are zeros (44% more multiplications). In float32
    on the CPU a 5x5 layer with several input channels takes
    :func:`digits_jax.winograd.conv_pool` instead, same parameters (see ``_winograd``).
    """

    features: int
    kernel_size: tuple[int, int]
    dtype: jnp.dtype | None = None
    matmul_dtype: jnp.dtype | None = None  # the matmul operands' (None: the activations')

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kh, kw = self.kernel_size
        *lead, h, w, in_features = x.shape
        if kh % 2 == 0 or kw % 2 == 0 or h % 2 or w % 2:
            raise ValueError(
                f"PhaseConvPool needs an odd kernel and even input sizes, got {kh}x{kw} on {h}x{w}"
            )
        kernel = self.param(
            "kernel", nn.initializers.lecun_normal(), (kh, kw, in_features, self.features)
        )
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
        oh, ow = (h - kh + 1) // 2, (w - kw + 1) // 2  # pooled output size
        if self._winograd(x, kernel):
            cells = winograd.fold(x.reshape(-1, h, w, in_features))
            cells = materialize(cells, kernel.ravel()[0] == 0)
            return winograd.conv_pool(cells, kernel).reshape(*lead, oh, ow, self.features) + bias
        ta, tc = kh // 2 + 1, kw // 2 + 1  # space-to-depth cells per window
        cells = x.reshape(*lead, h // 2, 2, w // 2, 2, in_features)
        cells = jnp.swapaxes(cells, -4, -3).reshape(*lead, h // 2, w // 2, 4 * in_features)
        # One buffer for the nine slices to copy from: fused into each of them, the
        # fold (and the producer before it) ran nine times, at about 1 ns an element.
        cells = materialize(cells, kernel.ravel()[0] == 0)
        patches = jnp.concatenate(
            [cells[..., a : a + oh, c : c + ow, :] for a in range(ta) for c in range(tc)], -1
        )
        patches = patches.reshape(-1, patches.shape[-1])
        pooled = _matmul_max4(patches, _phase_kernel(kernel), self.matmul_dtype)
        # The bias is the same in all four phases, so it can come after the max.
        return pooled.reshape(*lead, oh, ow, self.features) + bias

    def _winograd(self, x: jax.Array, kernel: jax.Array) -> bool:
        """Whether to take :mod:`digits_jax.winograd`'s path: float32 on the CPU, where
        it was measured (1.3-1.45x faster steps), for the shapes it tiles.

        Not for bfloat16 matmuls: there its small batched matmuls measured 11% slower
        than the phase form's one (and would round the transformed values too).
        """
        float32 = x.dtype == jnp.float32 and self.matmul_dtype in (None, jnp.float32)
        cpu = jax.default_backend() == "cpu"
        return float32 and cpu and winograd.fits(kernel.shape, *x.shape[-3:-1])


@jax.custom_vjp
def _overlap_add(blocks: jax.Array) -> jax.Array:
    """(..., h, w, th, tw, *rest) -> (..., h + th - 1, w + tw - 1, *rest): block (a, b) of
    pixel (i, j) is added at (i + a, j + b)."""
    *lead, h, w, th, tw = blocks.shape[:-3]
    rest = blocks.shape[-3:]
    out = jnp.zeros((*lead, h + th - 1, w + tw - 1, *rest), blocks.dtype)
    for a in range(th):
        for b in range(tw):
            out = out.at[..., a : a + h, b : b + w, :, :, :].add(blocks[..., a, b, :, :, :])
    return out


def _overlap_add_fwd(blocks):
    return _overlap_add(blocks), blocks.shape


def _overlap_add_bwd(shape, grad):
    # Each block reads back the window it was added to: slices stacked, no adds (the
    # automatic transpose summed th*tw zero-padded copies, the decoder's slowest op).
    h, w, th, tw = shape[-7:-3]
    rows = [
        jnp.stack([grad[..., a : a + h, b : b + w, :, :, :] for b in range(tw)], -4)
        for a in range(th)
    ]
    return (jnp.stack(rows, -5),)


_overlap_add.defvjp(_overlap_add_fwd, _overlap_add_bwd)


class ScatterConvTranspose(nn.Module):
    """A VALID transposed convolution (stride s, kernel a multiple of s) by scatter-add.

    Each input pixel times the whole (flipped) kernel is one row of a single matmul,
    ``(pixels, in) @ (in, kh*kw*features)``; the rows' kh x kw output blocks are then
    added where they overlap, as ``(kh/s) * (kw/s)`` shifted copies. It multiplies no
    padding zeros, and trained the DAE 1.2-1.4x faster on the CPU than computing each
    of the s*s output phases as a convolution of the padded input. Same parameters and result as
    ``nn.ConvTranspose(features, kernel_size, strides, padding="VALID")``.
    """

    features: int
    kernel_size: tuple[int, int]
    strides: tuple[int, int]
    dtype: jnp.dtype | None = None
    matmul_dtype: jnp.dtype | None = None  # the matmul operands' (None: the activations')

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kh, kw = self.kernel_size
        sh, sw = self.strides
        if kh % sh or kw % sw:
            raise ValueError("ScatterConvTranspose needs kernel sizes divisible by the strides")
        *lead, h, w, in_features = x.shape
        kernel = self.param(
            "kernel", nn.initializers.lecun_normal(), (kh, kw, in_features, self.features)
        )
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
        th, tw = kh // sh, kw // sw  # output blocks of s x s pixels per input pixel
        # Pixel i of the input lands on outputs s*i + t with kernel tap kh-1-t (flax's
        # transposed convolution does not flip the kernel in its correlation form).
        k = kernel[::-1, ::-1].reshape(th, sh, tw, sw, in_features, self.features)
        k = k.transpose(4, 0, 2, 1, 3, 5).reshape(in_features, -1)  # (in, a, b, p, q, F)
        blocks = _matmul(x.reshape(-1, in_features), k, self.matmul_dtype)
        out = _overlap_add(blocks.reshape(*lead, h, w, th, tw, sh, sw, self.features))
        oh, ow = h + th - 1, w + tw - 1
        out = jnp.swapaxes(out, -4, -3).reshape(*lead, oh * sh, ow * sw, self.features)
        return out + bias


def _conv_pool(
    impl: str, features: int, kernel_size: Sequence[int], name: str, dtype, matmul_dtype, x
) -> jax.Array:
    """A VALID convolution then 2x2 max pooling, by the chosen implementation."""
    if resolve_conv_impl(impl) == "unfold":
        layer = PhaseConvPool(features, tuple(kernel_size), dtype, matmul_dtype, name=name)
        return layer(x)
    conv = nn.Conv(features, tuple(kernel_size), padding="VALID", dtype=dtype, name=name)
    return max_pool2(conv(x))


def _conv_transpose(
    impl: str,
    features: int,
    kernel_size: Sequence[int],
    strides: Sequence[int],
    name: str,
    dtype,
    matmul_dtype,
) -> nn.Module:
    if resolve_conv_impl(impl) == "unfold":
        return ScatterConvTranspose(
            features, tuple(kernel_size), tuple(strides), dtype, matmul_dtype, name=name
        )
    return nn.ConvTranspose(
        features, tuple(kernel_size), tuple(strides), padding="VALID", dtype=dtype, name=name
    )


def max_pool2(x: jax.Array) -> jax.Array:
    """2x2 max pooling with stride 2 of (..., H, W, C) with H and W even.

    A reshape and a max: the same values as ``nn.max_pool(x, (2, 2), (2, 2))``
    and, on the CPU, a much cheaper gradient than ``reduce_window``'s
    select-and-scatter.
    """
    *lead, h, w, c = x.shape
    if h % 2 or w % 2:
        raise ValueError(f"max_pool2 needs even sizes, got {h}x{w}")
    return x.reshape(*lead, h // 2, 2, w // 2, 2, c).max(axis=(-4, -2))


class Encoder(nn.Module):
    """Conv 16 (5x5) -> pool 2 -> tanh -> Conv 32 (5x5) -> pool 2 -> tanh: 28x28x1 -> 4x4x32.

    ``matmul_dtype`` (bfloat16 or None), here as in the decoder and the two models,
    sets the operands of the ``unfold`` layers' matmuls only; ``xla``'s convolutions
    compute in ``dtype``.
    """

    conv_impl: str = "auto"
    dtype: jnp.dtype | None = None
    matmul_dtype: jnp.dtype | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        dtypes = (self.dtype, self.matmul_dtype)
        x = tanh(_conv_pool(self.conv_impl, 16, (5, 5), "conv1", *dtypes, x))
        return tanh(_conv_pool(self.conv_impl, 32, (5, 5), "conv2", *dtypes, x))


class Decoder(nn.Module):
    """ConvT 16 (6x6, /2) -> tanh -> ConvT 1 (6x6, /2) -> sigmoid: 4x4x32 -> 28x28x1."""

    conv_impl: str = "auto"
    dtype: jnp.dtype | None = None
    matmul_dtype: jnp.dtype | None = None

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        dtypes = (self.dtype, self.matmul_dtype)
        z = _conv_transpose(self.conv_impl, 16, (6, 6), (2, 2), "deconv1", *dtypes)(z)
        z = tanh(z)
        z = _conv_transpose(self.conv_impl, 1, (6, 6), (2, 2), "deconv2", *dtypes)(z)
        return nn.sigmoid(z.astype(jnp.float32))


class DAE(nn.Module):
    """Denoising autoencoder: images (B, 28, 28, 1) in [0, 1] -> reconstructions.

    ``matmul_dtype`` applies in training steps (``train=True``) only, here as in the
    classifier: evaluation applies the model as ``read`` and ``evaluate`` do, unrounded.
    """

    conv_impl: str = "auto"
    dtype: jnp.dtype | None = None
    matmul_dtype: jnp.dtype | None = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        dtypes = (self.dtype, self.matmul_dtype if train else None)
        z = Encoder(self.conv_impl, *dtypes, name="encoder")(x)
        return Decoder(self.conv_impl, *dtypes, name="decoder")(z)


class Classifier(nn.Module):
    """Encoder + Dense 10 on the 512 flattened features; returns logits (no softmax).

    ``dropout_rate`` drops features and ``matmul_dtype`` rounds the matmul operands in
    training only (``train=True``, with a ``"dropout"`` rng); neither adds parameters.
    ``features=True`` returns the 512 encoder features too, as (logits, features): what
    the pair detector reads.
    """

    num_classes: int = 10
    conv_impl: str = "auto"
    dtype: jnp.dtype | None = None
    dropout_rate: float = 0.0
    matmul_dtype: jnp.dtype | None = None

    @nn.compact
    def __call__(
        self, x: jax.Array, train: bool = False, features: bool = False
    ) -> jax.Array | tuple[jax.Array, jax.Array]:
        matmul_dtype = self.matmul_dtype if train else None
        z = Encoder(self.conv_impl, self.dtype, matmul_dtype, name="encoder")(x)
        z = z.reshape(*z.shape[:-3], -1)
        dropped = nn.Dropout(self.dropout_rate, deterministic=not train)(z)
        logits = nn.Dense(self.num_classes, dtype=self.dtype, name="head")(dropped)
        if features:
            return logits.astype(jnp.float32), z.astype(jnp.float32)
        return logits.astype(jnp.float32)


def init_params(model: nn.Module, rng: jax.Array) -> dict:
    """Initial parameters for one 28x28x1 input (the shapes do not depend on the batch).

    Compiled: eager initialisation of the unfolded convolutions takes seconds.
    """
    return jax.jit(model.init)(rng, jnp.zeros((1, 28, 28, 1), jnp.float32))["params"]


def apply_in_batches(
    apply: Callable[[np.ndarray], jax.Array], images: np.ndarray, batch_size: int, width: int
) -> np.ndarray:
    """``apply`` over (N, ...) images in batches, each padded to a power of two (at least
    32), so calls with different counts (photos with more or fewer digits) reuse a few
    compiled shapes and the disk cache; returns the (N, width) outputs."""
    out = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        n = len(batch)
        padded = max(32, 1 << (n - 1).bit_length())
        batch = np.pad(batch, ((0, padded - n),) + ((0, 0),) * (batch.ndim - 1))
        out.append(np.asarray(apply(batch))[:n])
    return np.concatenate(out) if out else np.zeros((0, width), np.float32)


def compute_dtype(name: str) -> jnp.dtype | None:
    """The activation dtype a config names (None: float32 throughout)."""
    return jnp.bfloat16 if name == "bfloat16" else None
