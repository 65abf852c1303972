import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from digits_jax import calibration, input_pipeline, pretrain, train, training_loop
from digits_jax.checkpoints import CheckpointError


def test_train_step_lowers_the_loss(tiny_config, blob_splits):
    train_split, _ = blob_splits
    state = train.create_train_state(jax.random.PRNGKey(0), tiny_config, 10)
    images = input_pipeline.to_float(train_split.images[:64])
    labels = train_split.labels[:64]
    step = jax.jit(train.train_step)
    losses = []
    for i in range(15):
        state, metrics = step(state, images, labels, jax.random.PRNGKey(i))
        losses.append(float(metrics["loss"]))
    assert losses[-1] < 0.5 * losses[0]


def test_dae_step_lowers_the_loss(tiny_config, blob_splits):
    train_split, _ = blob_splits
    state = pretrain.create_train_state(jax.random.PRNGKey(0), tiny_config, 10)
    images = input_pipeline.to_float(train_split.images[:64])
    step = jax.jit(pretrain.make_train_step(0.3))
    first = None
    for i in range(30):
        state, metrics = step(state, images, None, jax.random.PRNGKey(i))
        first = first if first is not None else float(metrics["loss"])
    assert float(metrics["loss"]) < 0.8 * first


def test_add_noise_range_and_zero_sigma():
    x = jax.random.uniform(jax.random.PRNGKey(0), (4, 28, 28, 1))
    noisy = pretrain.add_noise(x, jax.random.PRNGKey(1), 0.3)
    assert float(noisy.min()) >= 0 and float(noisy.max()) <= 1
    assert float(jnp.abs(noisy - x).mean()) > 0.05
    np.testing.assert_array_equal(pretrain.add_noise(x, jax.random.PRNGKey(1), 0.0), x)


def test_learning_rate_schedules(tiny_config):
    tiny_config.lr_schedule = "step"
    tiny_config.lr_decay_every = 1
    lr = training_loop.create_learning_rate_fn(tiny_config, steps_per_epoch=10)
    assert float(lr(0)) == pytest.approx(tiny_config.learning_rate)
    assert float(lr(10)) == pytest.approx(tiny_config.learning_rate * 0.8)
    tiny_config.lr_schedule = "cosine"
    lr = training_loop.create_learning_rate_fn(tiny_config, steps_per_epoch=10)
    assert float(lr(0)) == 0.0 and float(lr(20)) == pytest.approx(0.0, abs=1e-6)


def test_eval_batches_cover_each_example_once():
    idx, mask = input_pipeline.eval_batches(10, 4)
    assert idx.shape == (3, 4)
    assert sorted(idx[mask > 0].tolist()) == list(range(10))


def test_training_is_deterministic_and_resumes_exactly(tiny_config, blob_splits, tmp_path):
    train_split, test_split = blob_splits
    a = train.train_and_evaluate(tiny_config, tmp_path / "a", train=train_split, test=test_split)
    b = train.train_and_evaluate(tiny_config, tmp_path / "b", train=train_split, test=test_split)
    assert a["test_loss"] == b["test_loss"] and a["train_loss"] == b["train_loss"]
    assert a["test_accuracy"] > 0.5  # the blobs are easy
    # Lose the last epoch of run b, then run the same command again: it resumes from epoch 1.
    rows = training_loop.read_metrics(tmp_path / "b")
    assert [r["epoch"] for r in rows] == [1, 2]
    import shutil

    shutil.rmtree(tmp_path / "b" / "checkpoints" / "2")
    c = train.train_and_evaluate(tiny_config, tmp_path / "b", train=train_split, test=test_split)
    assert c["test_loss"] == a["test_loss"] and c["train_loss"] == a["train_loss"]
    lines = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    assert (tmp_path / "b" / "curves.png").stat().st_size > 0


def test_resume_with_a_shape_changing_config_is_refused(tiny_config, blob_splits, tmp_path):
    train_split, test_split = blob_splits
    tiny_config.num_epochs = 1
    train.train_and_evaluate(tiny_config, tmp_path, train=train_split, test=test_split)
    tiny_config.num_epochs = 2
    tiny_config.optimizer = "sgd"
    with pytest.raises(CheckpointError, match="optimizer: 'adam' -> 'sgd'"):
        train.train_and_evaluate(tiny_config, tmp_path, train=train_split, test=test_split)


def test_pretrain_then_graft_then_freeze(tiny_config, blob_splits, tmp_path):
    train_split, test_split = blob_splits
    tiny_config.num_epochs = 1
    dae = pretrain.train_and_evaluate(
        tiny_config, tmp_path / "dae", train=train_split, test=test_split
    )
    assert 0 < dae["test_loss"] < 0.2
    assert (tmp_path / "dae" / "reconstructions.png").stat().st_size > 0
    dae_params = train.load_dae_params(tmp_path / "dae")
    tiny_config.freeze_encoder = True
    train.train_and_evaluate(
        tiny_config,
        tmp_path / "clf",
        init_from=tmp_path / "dae",
        train=train_split,
        test=test_split,
    )
    from digits_jax.checkpoints import Checkpoints

    trained = Checkpoints(tmp_path / "clf").raw_state()["params"]
    for a, b in zip(
        jax.tree.leaves(trained["encoder"]), jax.tree.leaves(dae_params["encoder"]), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(CheckpointError, match="not a DAE"):
        train.load_dae_params(tmp_path / "clf")


def test_step_follows_the_config(tiny_config, blob_splits):
    """Augmentation and label smoothing reach the compiled step; equal configs share it."""
    train_split, _ = blob_splits
    images = input_pipeline.to_float(train_split.images[:32])
    labels = train_split.labels[:32]
    state = train.create_train_state(jax.random.PRNGKey(0), tiny_config, 10)
    losses = {}
    for name, overrides in {
        "plain": {},
        "shift": {"augment_shift": 2},
        "smooth": {"label_smoothing": 0.1},
    }.items():
        config = tiny_config.copy_and_resolve_references()
        config.update(overrides)
        step = train.task_for(config).train_step
        _, metrics = step(state, images, labels, jax.random.PRNGKey(3))
        losses[name] = float(metrics["loss"])
    assert len(set(losses.values())) == 3, losses
    assert train.task_for(tiny_config) is train.task_for(tiny_config.copy_and_resolve_references())


def test_holdout_fits_a_temperature_saved_with_the_checkpoint(tiny_config, blob_splits, tmp_path):
    from digits_jax import inference

    train_split, test_split = blob_splits
    tiny_config.holdout = 96
    last = train.train_and_evaluate(tiny_config, tmp_path, train=train_split, test=test_split)
    assert last["temperature"] > 0
    assert 0 <= last["test_ece_calibrated"] <= 1 and 0 <= last["test_ece"] <= 1
    loaded = inference.load_classifier(tmp_path)
    assert loaded.temperature == pytest.approx(last["temperature"])
    # The held-out accuracy is the saved model's, on the last 96 training digits.
    held = np.asarray(train_split.images[-96:], np.float32) / 255.0
    predicted = loaded.logits(held).argmax(-1)
    expected = np.mean(predicted == np.asarray(train_split.labels[-96:]))
    assert last["holdout_accuracy"] == pytest.approx(expected, abs=1e-6)
    # Test loss and accuracy come from the same pass as the calibration figures.
    test_logits = loaded.logits(np.asarray(test_split.images, np.float32) / 255.0)
    test_labels = np.asarray(test_split.labels)
    assert last["test_accuracy"] == pytest.approx(np.mean(test_logits.argmax(-1) == test_labels))
    nll = calibration.nll(test_logits, test_labels, 1.0)
    assert last["test_loss"] == pytest.approx(nll, rel=1e-4)
    tiny_config.holdout = 10_000
    with pytest.raises(Exception, match="holdout"):
        train.train_and_evaluate(tiny_config, tmp_path / "x", train=train_split, test=test_split)


@pytest.mark.parametrize("key", ["compute_dtype", "matmul_dtype"])
def test_bfloat16_compute_keeps_float32_parameters(key, tiny_config, blob_splits, tmp_path):
    train_split, test_split = blob_splits
    tiny_config.matmul_dtype = "float32"
    tiny_config[key] = "bfloat16"
    model = train.create_model(tiny_config)
    assert (model.dtype, model.matmul_dtype) == {
        "compute_dtype": (jnp.bfloat16, None),
        "matmul_dtype": (None, jnp.bfloat16),
    }[key]
    last = train.train_and_evaluate(tiny_config, tmp_path, train=train_split, test=test_split)
    assert last["test_accuracy"] > 0.5
    from digits_jax.checkpoints import Checkpoints

    params = Checkpoints(tmp_path).raw_state()["params"]
    assert {str(np.asarray(p).dtype) for p in jax.tree.leaves(params)} == {"float32"}


def test_whole_epoch_in_one_call_gives_the_chunked_result(tiny_config, blob_splits):
    train_split, _ = blob_splits
    results = []
    for per_call in (0, 5):
        tiny_config.steps_per_call = per_call
        state = train.create_train_state(jax.random.PRNGKey(0), tiny_config, 16)
        _, metrics = training_loop.train_epoch(
            train.task_for(tiny_config), state, train_split, tiny_config, jax.random.PRNGKey(1)
        )
        results.append(metrics["train_loss"])
    assert results[0] == pytest.approx(results[1], rel=1e-5)
