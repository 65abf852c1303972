"""The serving copy: written by training, loaded by readers only while it is current."""

import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

from digits_jax import export, inference, train
from digits_jax.checkpoints import Checkpoints


@pytest.fixture
def trained(tiny_config, blob_splits, tmp_path):
    train_split, test_split = blob_splits
    tiny_config.num_epochs = 2
    train.train_and_evaluate(tiny_config, tmp_path, train=train_split, test=test_split)
    return tmp_path, test_split


def _restored(workdir):
    ckpts = Checkpoints(workdir, create=False)
    try:
        return ckpts.raw_state()["params"], ckpts.meta()
    finally:
        ckpts.close()


def test_training_writes_the_latest_checkpoint(trained):
    workdir, test_split = trained
    assert (workdir / export.FILE).is_file()
    params, meta = export.load(workdir)
    saved_params, saved_meta = _restored(workdir)
    assert meta == saved_meta and meta["epoch"] == 2
    for (path, a), (_, b) in zip(
        sorted(export.flatten(params).items()),
        sorted(export.flatten(saved_params).items()),
        strict=True,
    ):
        assert np.array_equal(a, b), path
    # The classifier loaded from it reads as the checkpoint does.
    images = np.asarray(test_split.images[:64], np.float32) / 255.0
    fast = inference.load_classifier(workdir).logits(images)
    (workdir / export.FILE).unlink()
    slow = inference.load_classifier(workdir).logits(images)
    np.testing.assert_array_equal(fast, slow)


def test_stale_or_broken_copies_are_ignored(trained):
    workdir, _ = trained
    path = workdir / export.FILE
    params, meta = export.load(workdir)
    export.save(workdir, params, {**meta, "epoch": 1})  # an older epoch than the latest
    assert export.load(workdir) is None
    assert inference.load_classifier(workdir).meta["epoch"] == 2  # restored from Orbax
    path.write_bytes(path.read_bytes()[:100])  # truncated
    assert export.load(workdir) is None
    export.ensure(workdir)  # rewritten from the checkpoint
    assert export.load(workdir)[1]["epoch"] == 2
    assert not path.with_suffix(".npz.tmp").exists()


def test_latest_checkpoint_epoch_skips_unfinished_saves(tmp_path):
    assert export.latest_checkpoint_epoch(tmp_path) is None
    for name in ["3", "10", "11.orbax-checkpoint-tmp-123"]:
        (tmp_path / "checkpoints" / name).mkdir(parents=True)
    assert export.latest_checkpoint_epoch(tmp_path) == 10


def test_reading_imports_no_orbax(trained):
    """The point of the copy: a reader of a trained workdir never imports Orbax."""
    workdir, _ = trained
    code = (
        "import sys; from digits_jax import inference; "
        f"inference.load_classifier({str(workdir)!r}); "
        "print('orbax.checkpoint' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_to_numpy_copies_device_arrays():
    tree = {"a": {"b": jnp.arange(3.0)}, "c": jnp.ones((2, 2))}
    out = export.to_numpy(tree)
    assert type(out["a"]["b"]) is np.ndarray and type(out["c"]) is np.ndarray
    np.testing.assert_array_equal(out["a"]["b"], [0.0, 1.0, 2.0])
