"""The NumPy forward pass is the Flax classifier's twin: same parameters, same outputs."""

import jax
import numpy as np
import pytest

from digits_jax import export, models, numpy_classifier, trees


@pytest.fixture(scope="module")
def params():
    flax_params = models.init_params(models.Classifier(conv_impl="xla"), jax.random.PRNGKey(3))
    return export.to_numpy(flax_params)


@pytest.mark.parametrize("conv_impl", ["xla", "unfold"])
def test_outputs_equal_the_flax_module(params, conv_impl):
    images = np.random.default_rng(0).random((37, 28, 28, 1), np.float32)
    logits, features = models.Classifier(conv_impl=conv_impl).apply(
        {"params": params}, images, features=True
    )
    out = numpy_classifier.outputs(params, images, batch_size=16)  # three batches, one short
    assert out.shape == (37, 10 + 512) and out.dtype == np.float32
    np.testing.assert_allclose(out[:, :10], logits, atol=2e-5, rtol=1e-5)
    np.testing.assert_allclose(out[:, 10:], features, atol=2e-5, rtol=1e-5)


def test_parameter_table_is_the_flax_modules(params):
    init = lambda rng: models.init_params(models.Classifier(), rng)  # noqa: E731
    shapes = trees.flatten(jax.eval_shape(init, jax.random.PRNGKey(0)))
    assert {path: trees.spec(leaf) for path, leaf in shapes.items()} == trees.flatten(
        numpy_classifier.PARAM_SPECS
    )
    assert trees.first_mismatch(numpy_classifier.PARAM_SPECS, params) is None


def test_grey_crops_without_a_channel_axis_and_no_crops(params):
    images = np.random.default_rng(1).random((4, 28, 28), np.float32)
    np.testing.assert_array_equal(
        numpy_classifier.outputs(params, images),
        numpy_classifier.outputs(params, images[..., None]),
    )
    assert numpy_classifier.outputs(params, np.zeros((0, 28, 28))).shape == (0, 522)
