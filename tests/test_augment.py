import jax
import jax.numpy as jnp
import numpy as np

from digits_jax import augment


def _images(n=6):
    return jax.random.uniform(jax.random.PRNGKey(0), (n, 28, 28, 1))


def test_shift_shape_range_identity_and_determinism():
    x = _images()
    y = augment.random_shift(jax.random.PRNGKey(1), x, 2)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert float(y.min()) >= 0 and float(y.max()) <= 1
    np.testing.assert_array_equal(augment.random_shift(jax.random.PRNGKey(1), x, 0), x)
    np.testing.assert_array_equal(augment.random_shift(jax.random.PRNGKey(1), x, 2), y)
    assert not np.array_equal(augment.random_shift(jax.random.PRNGKey(2), x, 2), y)


def test_shift_moves_content_by_whole_pixels():
    x = jnp.zeros((50, 28, 28, 1)).at[:, 14, 14, 0].set(1.0)
    y = np.asarray(augment.random_shift(jax.random.PRNGKey(3), x, 2))
    positions = np.argwhere(y[..., 0] > 0)
    assert len(positions) == 50  # one pixel each, nothing lost
    offsets = positions[:, 1:] - 14
    assert np.abs(offsets).max() <= 2
    assert len({tuple(o) for o in offsets}) > 5  # the offsets vary per image
