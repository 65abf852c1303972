import jax
import jax.numpy as jnp
import numpy as np
import pytest

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


def test_geometry_identity_range_determinism():
    x = _images()
    np.testing.assert_array_equal(augment.random_geometry(jax.random.PRNGKey(0), x), x)
    kw = dict(rotation_deg=10, scale=0.1, shear_deg=8, translate=2, elastic_alpha=2)
    y = augment.random_geometry(jax.random.PRNGKey(0), x, **kw)
    assert y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 1
    np.testing.assert_array_equal(augment.random_geometry(jax.random.PRNGKey(0), x, **kw), y)
    assert not np.allclose(augment.random_geometry(jax.random.PRNGKey(1), x, **kw), y)


def test_affine_rotates_about_the_centre():
    """A bright dot right of the centre, rotated by 90 degrees, lands above or below it."""
    x = jnp.zeros((1, 28, 28, 1)).at[0, 13, 20, 0].set(1.0)  # centre is (13.5, 13.5)
    m = augment._affine(jnp.array([jnp.pi / 2]), jnp.ones(1), jnp.zeros(1), jnp.zeros((1, 2)))
    y = np.asarray(augment._warp(x, m))[0, ..., 0]
    r, c = np.unravel_index(np.argmax(y), y.shape)
    assert abs(c - 13.5) <= 1 and abs(abs(r - 13.5) - 6.5) <= 1
    assert y.sum() == pytest.approx(1.0, abs=0.05)  # bilinear resampling keeps the ink


def test_elastic_fields_are_smooth_and_bounded():
    d = np.asarray(augment.elastic_displacements(jax.random.PRNGKey(0), 4, alpha=2.0, sigma=4.0))
    assert d.shape == (4, 2, 28, 28)
    assert np.abs(d).max() == pytest.approx(2.0, rel=1e-3)
    assert np.abs(np.diff(d, axis=-1)).max() < 0.5  # neighbours move together


def test_max_3x3_equals_reduce_window():
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 9, 7, 1))
    ref = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 3, 3, 1), (1, 1, 1, 1), "SAME")
    np.testing.assert_array_equal(augment.max_3x3(x), ref)


def test_stroke_width_thickens_and_thins():
    x = jnp.zeros((2, 28, 28, 1)).at[:, 8:20, 12:17, :].set(1.0)  # a 5-pixel-wide bar
    thick = augment.random_stroke_width(jax.random.PRNGKey(0), x, 0.5)
    np.testing.assert_array_equal(augment.random_stroke_width(jax.random.PRNGKey(0), x, 0.0), x)
    sums = np.asarray(thick.sum(axis=(1, 2, 3)))
    assert all(s != float(x[0].sum()) for s in sums)  # each image thickened or thinned
    np.testing.assert_array_equal(augment.random_stroke_width(jax.random.PRNGKey(0), x, 0.5), thick)
    thin_line = jnp.zeros((1, 28, 28, 1)).at[:, 5:20, 14, :].set(1.0)  # 1 px: erosion would erase
    for k in range(8):
        out = augment.random_stroke_width(jax.random.PRNGKey(k), thin_line, 0.5)
        assert float(out.sum()) >= float(thin_line.sum())


def test_tta_views():
    x = _images(3)
    np.testing.assert_array_equal(augment.tta_view(x, 0), x)
    for i in range(1, len(augment.TTA_VIEWS)):
        v = augment.tta_view(x, i)
        assert v.shape == x.shape and not np.allclose(v, x)


def test_bilinear_sample_interpolates_and_is_black_outside():
    x = _images(2)
    r, c = np.meshgrid(np.arange(28.0), np.arange(28.0), indexing="ij")
    grid = np.broadcast_to(np.stack([r, c]), (2, 2, 28, 28))
    np.testing.assert_allclose(augment.bilinear_sample(x, jnp.asarray(grid)), x, atol=1e-6)
    half = augment.bilinear_sample(x, jnp.asarray(grid + np.array([0.0, 0.5])[:, None, None]))
    expected = 0.5 * (x[:, :, :-1] + x[:, :, 1:])
    np.testing.assert_allclose(half[:, :, :-1], expected, atol=1e-6)
    np.testing.assert_allclose(half[:, :, -1], 0.5 * x[:, :, -1], atol=1e-6)  # half black
    far = augment.bilinear_sample(x, jnp.asarray(grid + 40.0))
    assert float(jnp.abs(far).max()) == 0.0
