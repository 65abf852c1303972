"""Shared fixtures: random device splits and the tiny config."""

import importlib
from pathlib import Path

import jax
import numpy as np
import pytest

from digits_jax import config_lib, export, input_pipeline

ROOT = Path(__file__).resolve().parent.parent

# JAX's backend starts here, with its default devices: a CLI command run in this
# process (cli.main) then cannot split the CPU into devices for the tests after it.
jax.devices()

# On a GPU, XLA computes float32 convolutions and matmuls in TF32 by default (about three
# significant digits); the tests hold implementations equal at float32 tolerance.
if jax.default_backend() != "cpu":
    jax.config.update("jax_default_matmul_precision", "highest")


@pytest.fixture
def import_script(monkeypatch):
    """Imports a module of ``scripts/`` by name (scripts import each other so)."""
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    return importlib.import_module


@pytest.fixture
def tiny_config():
    return config_lib.get_config(ROOT / "configs" / "tiny.py")


def serving_workdir(path: Path, params, task: str = "classifier") -> Path:
    """A workdir holding only a serving copy of ``params`` for epoch 1: a classifier for
    the loading and reading mechanics without training one."""
    (path / "checkpoints" / "1").mkdir(parents=True)
    export.save(path, params, {"task": task, "epoch": 1, "config": {"conv_impl": "auto"}})
    return path


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


def _train_real(tmp_path_factory, epochs: int, pair_examples: int = 0):
    from digits_jax import train

    workdir = tmp_path_factory.mktemp(f"real_model_{epochs}")
    overrides = [
        f"num_epochs={epochs}",
        "progress=false",
        f"pair_detector_examples={pair_examples}",
    ]
    config = config_lib.get_config(ROOT / "configs" / "classifier.py", overrides)
    return workdir, train.train_and_evaluate(config, workdir)


@pytest.fixture(scope="session")
def real_model(tmp_path_factory):
    """One epoch of the default classifier on full MNIST (about 15 s on 2 cores).

    Returns (workdir, last metrics).
    """
    return _train_real(tmp_path_factory, 1)


@pytest.fixture(scope="session")
def reader_model(tmp_path_factory):
    """Three epochs of the default classifier (about 35 s) with its pair detector (fitted
    on 2,000 pairs): a model that reads pages."""
    return _train_real(tmp_path_factory, 3, pair_examples=2000)
