"""Shared fixtures: random device splits and the tiny config."""

from pathlib import Path

import numpy as np
import pytest

from digits_jax import config_lib, input_pipeline

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def tiny_config():
    return config_lib.get_config(ROOT / "configs" / "tiny.py")


def _blob_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Learnable stand-in digits: class k is a bright square at a class-specific place."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.int32)
    images = (rng.random((n, 28, 28)) * 60).astype(np.uint8)
    for i, k in enumerate(labels):
        r, c = 3 + 2 * (k // 5) * 5, 3 + 4 * (k % 5)
        images[i, r : r + 6, c : c + 5] = 255
    return images, labels


@pytest.fixture
def blob_splits():
    train = input_pipeline.device_split(*_blob_digits(512, 0))
    test = input_pipeline.device_split(*_blob_digits(128, 1))
    return train, test


@pytest.fixture(scope="session")
def real_model(tmp_path_factory):
    """One epoch of the default classifier on full MNIST (about 15 s on 2 cores).

    Returns (workdir, last metrics). Shared by the tests that need a model that
    really reads digits.
    """
    from digits_jax import train

    workdir = tmp_path_factory.mktemp("real_model")
    config = config_lib.get_config(ROOT / "configs" / "classifier.py", ["num_epochs=1"])
    config.progress = False
    last = train.train_and_evaluate(config, workdir)
    return workdir, last
