import jax
import numpy as np
import optax
import pytest

from digits_jax import checkpoints, models, training_loop


def _state(seed=0, tx=None):
    model = models.Classifier()
    params = models.init_params(model, jax.random.PRNGKey(seed))
    return training_loop.new_state(model, params, tx or optax.adam(1e-3))


def test_save_restore_round_trip(tmp_path):
    state = _state(0)
    state = state.apply_gradients(grads=jax.tree.map(np.ones_like, state.params))
    ckpts = checkpoints.Checkpoints(tmp_path, keep=2)
    ckpts.save(1, state, {"task": "classifier", "config": {"seed": 0}})
    assert ckpts.latest_epoch() == 1
    assert ckpts.meta()["task"] == "classifier"
    restored = ckpts.restore(_state(1))
    assert int(restored.step) == 1
    for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(state), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_keeps_only_the_last_few(tmp_path):
    ckpts = checkpoints.Checkpoints(tmp_path, keep=2)
    for epoch in (1, 2, 3):
        ckpts.save(epoch, _state(), {"task": "classifier"})
    assert ckpts.manager.all_steps() == [2, 3]


def test_restore_refuses_another_structure(tmp_path):
    ckpts = checkpoints.Checkpoints(tmp_path)
    ckpts.save(1, _state(), {"task": "classifier"})
    with pytest.raises(checkpoints.CheckpointError, match="does not fit this config"):
        ckpts.restore(_state(tx=optax.sgd(0.1, momentum=0.9)))


def test_missing_checkpoints(tmp_path):
    with pytest.raises(checkpoints.CheckpointError, match="no checkpoints"):
        checkpoints.Checkpoints(tmp_path / "nothing", create=False)
    with pytest.raises(checkpoints.CheckpointError, match="no checkpoint in"):
        checkpoints.Checkpoints(tmp_path).meta()
