import jax
import jax.numpy as jnp
import numpy as np
import pytest

from digits_jax import models, winograd


def test_one_dimensional_transforms_are_exact_correlations():
    at, g, bt = winograd.matrices_1d()
    rng = np.random.default_rng(0)
    for _ in range(5):
        d, k = rng.normal(size=winograd.WINDOW), rng.normal(size=winograd.KERNEL)
        expected = [d[i : i + winograd.KERNEL] @ k for i in range(winograd.TILE)]
        np.testing.assert_allclose(at @ ((g @ k) * (bt @ d)), expected, atol=1e-12)


def test_two_dimensional_transforms_give_each_pooling_window_its_four_outputs():
    inputs, outputs, kernel_map = (m.astype(np.float64) for m in winograd.matrices_2d())
    rng = np.random.default_rng(1)
    window = rng.normal(size=(winograd.WINDOW, winograd.WINDOW))
    kernel = rng.normal(size=(winograd.KERNEL, winograd.KERNEL))
    # Columns of ``inputs`` read pixel (4a + r, 4c + s) in the order (a, c, r, s).
    cells = window.reshape(2, 4, 2, 4).transpose(0, 2, 1, 3).ravel()
    y = outputs @ ((kernel_map @ kernel.ravel()) * (inputs @ cells))
    conv = np.array(
        [[np.sum(window[i : i + 5, j : j + 5] * kernel) for j in range(4)] for i in range(4)]
    )
    # Rows: (position p, q in the pooling window, window u, v) -> output (2u + p, 2v + q).
    expected = conv.reshape(2, 2, 2, 2).transpose(1, 3, 0, 2).ravel()
    np.testing.assert_allclose(y, expected, atol=1e-4)


def test_fits_only_tiled_five_by_five_layers_with_several_channels():
    assert winograd.fits((5, 5, 16, 32), 12, 12)
    assert not winograd.fits((5, 5, 1, 16), 28, 28)
    assert not winograd.fits((3, 3, 16, 32), 12, 12)
    assert not winograd.fits((5, 5, 16, 32), 10, 12)
    assert winograd.fits((5, 5, 16, 32), 16, 20)
    assert not winograd.fits((5, 5, 16, 32), 14, 12)  # the input folds into 4x4 cells


@pytest.mark.parametrize("shape", [(3, 12, 12, 16), (1, 16, 20, 5)])
def test_conv_pool_equals_convolution_and_max_pool_with_gradients(shape):
    x = jax.random.normal(jax.random.PRNGKey(0), shape)
    kernel = 0.1 * jax.random.normal(jax.random.PRNGKey(1), (5, 5, shape[-1], 8))

    def direct(x, kernel):
        y = jax.lax.conv_general_dilated(
            x, kernel, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        return models.max_pool2(y)

    def fast(x, kernel):
        return winograd.conv_pool(winograd.fold(x), kernel)

    np.testing.assert_allclose(fast(x, kernel), direct(x, kernel), rtol=2e-5, atol=2e-5)
    loss = lambda f: lambda x, k: jnp.sum(jnp.sin(f(x, k)))  # noqa: E731
    for a, b in zip(
        jax.grad(loss(fast), (0, 1))(x, kernel),
        jax.grad(loss(direct), (0, 1))(x, kernel),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_max4_sends_ties_to_the_first():
    y = jnp.array([[1.0, 2.0], [3.0, 2.0], [3.0, 0.0], [0.0, 2.0]])
    grad = jax.grad(lambda y: jnp.sum(winograd.max4(y) * jnp.array([10.0, 20.0])))(y)
    np.testing.assert_array_equal(grad, [[0, 20], [10, 0], [0, 0], [0, 0]])
