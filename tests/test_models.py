import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from digits_jax import models


def _init(module, x):
    return module.init(jax.random.PRNGKey(0), x)["params"]


@pytest.mark.parametrize("impl", ["xla", "unfold"])
def test_shapes(impl):
    x = jnp.zeros((3, 28, 28, 1))
    enc = models.Encoder(conv_impl=impl)
    assert enc.apply({"params": _init(enc, x)}, x).shape == (3, 4, 4, 32)
    dae = models.DAE(conv_impl=impl)
    out = dae.apply({"params": _init(dae, x)}, x)
    assert out.shape == (3, 28, 28, 1)
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    clf = models.Classifier(conv_impl=impl)
    assert clf.apply({"params": _init(clf, x)}, x).shape == (3, 10)


def test_dae_and_classifier_share_the_encoder_tree():
    x = jnp.zeros((1, 28, 28, 1))
    dae = _init(models.DAE(), x)
    clf = _init(models.Classifier(), x)
    shapes = lambda t: jax.tree.map(jnp.shape, t)  # noqa: E731
    assert shapes(dae["encoder"]) == shapes(clf["encoder"])
    assert set(clf) == {"encoder", "head"}
    assert clf["head"]["kernel"].shape == (512, 10)


def _compare(ref, fast, x, atol=2e-5, grad_tol=1e-4):
    params = ref.init(jax.random.PRNGKey(1), x)["params"]
    params = jax.tree.map(
        lambda p: p + 0.05 * jax.random.normal(jax.random.PRNGKey(2), p.shape), params
    )
    fast_params = fast.init(jax.random.PRNGKey(1), x)["params"]
    assert jax.tree.map(jnp.shape, params) == jax.tree.map(jnp.shape, fast_params)

    def loss(module):
        return lambda p, x: jnp.sum(jnp.sin(module.apply({"params": p}, x)))

    np.testing.assert_allclose(
        ref.apply({"params": params}, x), fast.apply({"params": params}, x), atol=atol
    )
    g_ref = jax.grad(loss(ref), argnums=(0, 1))(params, x)
    g_fast = jax.grad(loss(fast), argnums=(0, 1))(params, x)
    for a, b in zip(jax.tree.leaves(g_ref), jax.tree.leaves(g_fast), strict=True):
        np.testing.assert_allclose(a, b, rtol=grad_tol, atol=grad_tol)


class _ConvThenPool(nn.Module):
    """flax's own convolution and max pooling (the reference), or PhaseConvPool."""

    features: int
    kernel_size: tuple[int, int]
    phases: bool = False
    matmul_dtype: jnp.dtype | None = None

    @nn.compact
    def __call__(self, x):
        if self.phases:
            layer = models.PhaseConvPool(
                self.features, self.kernel_size, matmul_dtype=self.matmul_dtype, name="conv"
            )
            return layer(x)
        y = nn.Conv(self.features, self.kernel_size, padding="VALID", name="conv")(x)
        return nn.max_pool(y, (2, 2), strides=(2, 2))


@pytest.mark.parametrize(
    "shape, kernel",
    [
        ((2, 12, 12, 3), (5, 5)),  # Winograd's path (float32 on the CPU)
        ((1, 10, 14, 2), (3, 5)),  # the phase form's
        ((2, 28, 28, 1), (5, 5)),  # the phase form's: one input channel
        ((2, 10, 10, 3), (5, 5)),  # the phase form's: 10 is not a multiple of 4
    ],
)
def test_phase_conv_pool_equals_flax_conv_and_max_pool(shape, kernel):
    x = jax.random.normal(jax.random.PRNGKey(0), shape)
    _compare(_ConvThenPool(7, kernel), _ConvThenPool(7, kernel, phases=True), x)


def test_phase_conv_pool_takes_winograd_for_the_encoders_second_layer_in_float32():
    layer = models.PhaseConvPool(32, (5, 5))
    kernel = jnp.zeros((5, 5, 16, 32))
    assert layer._winograd(jnp.zeros((2, 12, 12, 16)), kernel)
    assert not layer._winograd(jnp.zeros((2, 12, 12, 16), jnp.bfloat16), kernel)
    bf16 = models.PhaseConvPool(32, (5, 5), matmul_dtype=jnp.bfloat16)
    assert not bf16._winograd(jnp.zeros((2, 12, 12, 16)), kernel)
    assert not layer._winograd(jnp.zeros((2, 28, 28, 1)), jnp.zeros((5, 5, 1, 16)))


def test_phase_conv_pool_gradient_with_ties_goes_where_max_pool_sends_it():
    # Blank paper: all four outputs of a window are equal (ties), as on MNIST's
    # black background; the gradient must still match reduce_window's.
    x = jnp.zeros((2, 14, 14, 3)).at[:, 2:7, 3:9].set(1.0)
    _compare(_ConvThenPool(4, (5, 5)), _ConvThenPool(4, (5, 5), phases=True), x)


def test_winograd_path_with_ties_gives_the_parameters_max_pools_gradient():
    # Winograd's sums round differently at the four positions of a window, so an exact
    # tie goes to whichever rounds highest; but tied positions read the same patch of
    # a constant region, so the parameters' gradient is the same.
    x = jnp.full((2, 12, 12, 3), 0.3).at[:, 2:7, 3:9].set(1.0)
    ref, fast = _ConvThenPool(4, (5, 5)), _ConvThenPool(4, (5, 5), phases=True)
    params = ref.init(jax.random.PRNGKey(1), x)["params"]
    grads = [
        jax.grad(lambda p, m=m: jnp.sum(jnp.sin(m.apply({"params": p}, x))))(params)
        for m in (ref, fast)
    ]
    for a, b in zip(*map(jax.tree.leaves, grads), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_phase_conv_pool_refuses_even_kernels_and_odd_inputs():
    for kernel, size in [((4, 4), 12), ((5, 5), 11)]:
        module = models.PhaseConvPool(3, kernel)
        with pytest.raises(ValueError, match="odd kernel"):
            module.init(jax.random.PRNGKey(0), jnp.zeros((1, size, size, 1)))


@pytest.mark.parametrize("shape", [(4, 12, 12, 3), (4, 14, 14, 3)])
def test_phase_conv_pool_folds_its_input_once_for_its_slices(shape):
    # The patch slices (nine cells in the phase form, four in Winograd's) must copy
    # from one folded buffer (a conditional on the CPU), not each fold the input again.
    module = models.PhaseConvPool(8, (5, 5))
    x = jnp.tanh(jax.random.normal(jax.random.PRNGKey(0), shape))
    params = module.init(jax.random.PRNGKey(1), x)
    compiled = jax.jit(module.apply).lower(params, x).compile().as_text()
    assert "conditional" in compiled


@pytest.mark.parametrize(
    "shape, kernel, strides, features",
    [
        ((2, 4, 4, 5), (6, 6), (2, 2), 1),
        ((2, 4, 4, 5), (6, 6), (2, 2), 6),
        ((1, 3, 5, 2), (4, 6), (2, 3), 3),
    ],
)
def test_scatter_conv_transpose_equals_flax(shape, kernel, strides, features):
    x = jax.random.normal(jax.random.PRNGKey(0), shape)
    ref = nn.ConvTranspose(features, kernel, strides, padding="VALID")
    _compare(ref, models.ScatterConvTranspose(features, kernel, strides), x)


def test_bfloat16_matmuls_agree_with_the_float32_layers_to_bfloat16_precision():
    """``matmul_dtype=bfloat16`` rounds the matmul operands (sums stay float32): values and
    gradients within bfloat16's precision of flax's float32 layers, and not equal to
    them, so the option is really in effect."""
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 12, 12, 3))
    bf16 = _ConvThenPool(7, (5, 5), phases=True, matmul_dtype=jnp.bfloat16)
    _compare(_ConvThenPool(7, (5, 5)), bf16, x, atol=0.05, grad_tol=0.05)
    params = _ConvThenPool(7, (5, 5)).init(jax.random.PRNGKey(1), x)["params"]
    exact = _ConvThenPool(7, (5, 5), phases=True).apply({"params": params}, x)
    rounded = bf16.apply({"params": params}, x)
    assert rounded.dtype == jnp.float32 and 1e-4 < float(jnp.abs(rounded - exact).max()) < 0.05
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 4, 4, 5))
    ref = nn.ConvTranspose(6, (6, 6), (2, 2), padding="VALID")
    fast = models.ScatterConvTranspose(6, (6, 6), (2, 2), matmul_dtype=jnp.bfloat16)
    _compare(ref, fast, x, atol=0.05, grad_tol=0.05)


def test_bfloat16_matmuls_only_in_training_steps():
    """Evaluation sees the model as `read` and `evaluate` apply it: in float32."""
    x = jax.random.uniform(jax.random.PRNGKey(0), (4, 28, 28, 1))
    for cls in (models.DAE, models.Classifier):
        exact = cls(conv_impl="unfold")
        rounded = cls(conv_impl="unfold", matmul_dtype=jnp.bfloat16)
        params = _init(exact, x)
        ref = exact.apply({"params": params}, x)
        np.testing.assert_array_equal(rounded.apply({"params": params}, x), ref)
        trained = rounded.apply({"params": params}, x, train=True)
        assert 0 < float(jnp.abs(trained - ref).max()) < 0.05


@pytest.mark.parametrize("shape", [(6, 36), (5, 576), (4, 3), (3, 1)])
def test_transpose_for_the_backward_matmuls_is_the_transpose(shape):
    x = jax.random.normal(jax.random.PRNGKey(0), shape)
    np.testing.assert_array_equal(jax.jit(models._transpose)(x), x.T)


def test_whole_models_agree_across_conv_impls():
    x = jax.random.uniform(jax.random.PRNGKey(0), (4, 28, 28, 1))
    for cls in (models.DAE, models.Classifier):
        params = _init(cls(conv_impl="xla"), x)
        a = cls(conv_impl="xla").apply({"params": params}, x)
        b = cls(conv_impl="unfold").apply({"params": params}, x)
        np.testing.assert_allclose(a, b, atol=2e-5)


def test_resolve_conv_impl():
    assert models.resolve_conv_impl("xla") == "xla"
    assert models.resolve_conv_impl("auto") in ("xla", "unfold")
    assert models.resolve_conv_impl("auto", training=False) == "xla"
    assert models.resolve_conv_impl("unfold", training=False) == "unfold"
    with pytest.raises(ValueError, match="conv_impl"):
        models.resolve_conv_impl("cudnn")


def test_resolve_matmul_dtype(monkeypatch):
    assert models.resolve_matmul_dtype("float32") is None
    assert models.resolve_matmul_dtype("bfloat16") == jnp.bfloat16
    for amx in (True, False):
        monkeypatch.setattr(models, "cpu_has_amx", lambda amx=amx: amx)
        on_amx_cpu = amx and jax.default_backend() == "cpu"
        assert models.resolve_matmul_dtype("auto") == (jnp.bfloat16 if on_amx_cpu else None)
    with pytest.raises(ValueError, match="matmul_dtype"):
        models.resolve_matmul_dtype("float16")


def test_max_pool2_equals_flax_max_pool_with_gradients():
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 8, 12, 5))
    np.testing.assert_array_equal(models.max_pool2(x), nn.max_pool(x, (2, 2), strides=(2, 2)))
    grad = lambda pool: jax.grad(lambda v: jnp.sum(jnp.sin(pool(v))))(x)  # noqa: E731
    np.testing.assert_allclose(
        grad(models.max_pool2), grad(lambda v: nn.max_pool(v, (2, 2), strides=(2, 2))), atol=1e-6
    )
    with pytest.raises(ValueError, match="even"):
        models.max_pool2(jnp.zeros((1, 7, 8, 1)))


def test_apply_in_batches_pads_to_powers_of_two_and_trims():
    seen = []

    def apply(batch):
        seen.append(len(batch))
        return batch.sum(axis=(1, 2))[:, None] * np.ones((1, 3))

    images = np.arange(70 * 2 * 2, dtype=np.float32).reshape(70, 2, 2)
    out = models.apply_in_batches(apply, images, batch_size=64, width=3)
    assert seen == [64, 32]  # 64 as they come, the last 6 padded to 32
    np.testing.assert_allclose(out[:, 0], images.sum(axis=(1, 2)))
    assert out.shape == (70, 3)
    assert models.apply_in_batches(apply, images[:0], 64, width=3).shape == (0, 3)


def test_tanh_is_as_close_to_tanh_as_xlas_own():
    x = np.concatenate([np.linspace(-12, 12, 200_001), np.geomspace(1e-30, 12, 20_001)])
    x = x.astype(np.float32)
    exact = np.tanh(x.astype(np.float64))
    ours = np.asarray(jax.jit(models.tanh)(x), np.float64)
    assert np.abs(ours - exact).max() < 4e-7
    assert np.all(np.abs(ours) <= 1) and np.array_equal(np.sign(ours), np.sign(x))
    grads = jax.jit(jax.vmap(jax.grad(models.tanh)))(x[::97])
    np.testing.assert_allclose(grads, 1 - np.tanh(x[::97].astype(np.float64)) ** 2, atol=1e-6)
    # bfloat16 in, bfloat16 out, as close as rounding the exact value allows
    half = jnp.asarray(x[::97], jnp.bfloat16)
    ours_half = jax.jit(models.tanh)(half)
    assert ours_half.dtype == jnp.bfloat16
    exact_half = np.tanh(np.asarray(half, np.float64))
    assert np.abs(np.asarray(ours_half, np.float64) - exact_half).max() <= 2**-9 + 1e-6
    edge = np.asarray(models.tanh(jnp.array([np.inf, -np.inf, np.nan, 0.0])))
    np.testing.assert_array_equal(edge[[0, 1, 3]], [1.0, -1.0, 0.0])
    assert np.isnan(edge[2])


def test_materialize_returns_its_input_through_a_conditional_xla_keeps():
    x = jax.random.normal(jax.random.PRNGKey(0), (4, 28, 28, 1))
    for flag in (True, False):
        np.testing.assert_array_equal(models.materialize(x, jnp.asarray(flag)), x)
    # Reading x nine times, as the unfolded convolution does: the conditional must
    # survive compilation, or the producer of x is recomputed in every read.
    reads = jax.jit(
        lambda x, f: sum(models.materialize(jnp.exp(x), f)[:, i : i + 20] for i in range(9))
    )
    assert "conditional" in reads.lower(x, jnp.asarray(True)).compile().as_text()


def test_tanh_coefficients_are_what_scripts_fit_tanh_fits(import_script):
    fit_tanh = import_script("fit_tanh")

    p, q = fit_tanh.fit(len(models._TANH_P) - 1, len(models._TANH_Q) - 1)
    np.testing.assert_allclose(p.astype(np.float32), models._TANH_P, rtol=1e-6)
    np.testing.assert_allclose(q.astype(np.float32), models._TANH_Q, rtol=1e-6)
    assert fit_tanh.CLAMP == models._TANH_CLAMP
