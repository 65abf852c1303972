"""The time-to-accuracy race: real training on tiny data, its clock and its bookkeeping."""

from __future__ import annotations

import hashlib
import itertools
import json

import jax
import numpy as np
import pytest
from conftest import ROOT

from digits_jax import cli, mnist_files
from digits_jax import time_to_accuracy as tta
from digits_jax.errors import DigitsJaxError

TINY = ROOT / "configs" / "tiny.py"


def test_chunk_bounds_cover_an_epoch_once():
    assert tta.chunk_bounds(10, 4) == [(0, 2), (2, 5), (5, 8), (8, 10)]
    assert tta.chunk_bounds(3, 8) == [(0, 1), (1, 2), (2, 3)]  # no empty chunks
    assert tta.chunk_bounds(7, 1) == [(0, 7)]


def test_race_config_sets_the_dtype_and_rejects_bad_keys():
    config = tta.race_config(None, "bfloat16")
    assert config.compute_dtype == "bfloat16" and config.progress is False
    assert config.batch_size == 256  # configs/classifier_race.py
    with pytest.raises(DigitsJaxError, match="nope"):
        tta.race_config(TINY, "float32", ["nope=1"])


def test_race_reaches_an_easy_target_and_keeps_its_books(blob_splits):
    config = tta.race_config(TINY, "float32", ["num_epochs=3", "learning_rate=0.01"])
    r = tta.time_to_accuracy(config, *blob_splits, target=0.5, evals_per_epoch=2)
    curve = r["curve"]
    assert [p["epochs"] for p in curve] == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    assert all(b["train_s"] > a["train_s"] for a, b in itertools.pairwise(curve))
    assert r["reached"] and r["final_accuracy"] == curve[-1]["accuracy"] > 0.5
    first = next(p for p in curve if p["accuracy"] >= 0.5)
    assert (r["epochs_to_target"], r["train_s_to_target"]) == (first["epochs"], first["train_s"])
    assert len(r["epoch_s"]) == 3 and r["compile_s"] > 0 and r["eval_s"] > 0
    assert sum(r["epoch_s"]) == pytest.approx(curve[-1]["train_s"], abs=1e-3)
    assert r["config"]["num_epochs"] == 3
    json.dumps(r)  # the bench prints it as JSON


def test_race_that_misses_says_so(blob_splits):
    train, test = blob_splits
    shuffled = type(train)(
        train.images, jax.random.permutation(jax.random.PRNGKey(1), train.labels)
    )
    config = tta.race_config(TINY, "float32", ["num_epochs=1"])
    r = tta.time_to_accuracy(config, shuffled, test, target=1.0, evals_per_epoch=1)
    assert not r["reached"] and r["train_s_to_target"] is None and r["epochs_to_target"] is None
    with pytest.raises(DigitsJaxError, match="target accuracy"):
        tta.time_to_accuracy(config, train, test, target=0.0)
    with pytest.raises(DigitsJaxError, match="num_epochs >= 1"):
        tta.time_to_accuracy(tta.race_config(TINY, "float32", ["num_epochs=0"]), train, test)


def test_nothing_is_compiled_while_the_clock_runs(blob_splits, monkeypatch):
    """The compile-excluded claim: every backend compile happens inside _compile."""
    compiles: list[str] = []
    timing = {"on": False}
    real_compile = tta._compile

    def compile_then_start_clock(*args, **kwargs):
        seconds = real_compile(*args, **kwargs)
        timing["on"] = True
        return seconds

    def listener(event: str, duration: float, **kwargs) -> None:
        if timing["on"] and event.endswith("backend_compile_duration"):
            compiles.append(event)

    monkeypatch.setattr(tta, "_compile", compile_then_start_clock)
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        config = tta.race_config(TINY, "float32", ["num_epochs=2", "seed=7"])  # fresh jits
        tta.time_to_accuracy(config, *blob_splits, target=0.9, evals_per_epoch=3)
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert timing["on"] and compiles == []


def _tiny_idx_folder(folder, n_train=64, n_test=32):
    rng = np.random.default_rng(0)
    files = {
        mnist_files.TRAIN_IMAGES: rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        mnist_files.TRAIN_LABELS: rng.integers(0, 10, n_train).astype(np.uint8),
        mnist_files.TEST_IMAGES: rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        mnist_files.TEST_LABELS: rng.integers(0, 10, n_test).astype(np.uint8),
    }
    sums = {}
    for name, array in files.items():
        path = mnist_files.write_idx(folder / name, array)
        sums[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files, sums


def test_idx_splits_load_verified_and_limited(tmp_path, monkeypatch):
    files, sums = _tiny_idx_folder(tmp_path)
    train, test = tta.load_idx_splits(tmp_path, sums)
    assert (train.size, test.size) == (64, 32)
    np.testing.assert_array_equal(np.asarray(test.images), files[mnist_files.TEST_IMAGES])
    with pytest.raises(DigitsJaxError, match="SHA-256 mismatch"):
        tta.load_idx_splits(tmp_path)  # not MNIST's published checksums
    # The race's loader applies the config's limits to the IDX splits.
    monkeypatch.setattr(mnist_files, "MNIST_SHA256", sums)
    config = tta.race_config(TINY, "float32", ["train_limit=40", "test_limit=0"])
    train, test = tta.load_splits(config, tmp_path)
    assert (train.size, test.size) == (40, 32)
    np.testing.assert_array_equal(np.asarray(train.labels), files[mnist_files.TRAIN_LABELS][:40])


def test_bench_race_flags_fail_in_one_line(tmp_path, capsys):
    assert cli.main(["bench", "--models", "--to-accuracy", "1.5"]) == 2
    assert capsys.readouterr().err.strip() == (
        "digits-jax: error: --to-accuracy must be in (0, 1], got 1.5"
    )
    assert cli.main(["bench", "--models", "--mnist-dir", str(tmp_path)]) == 2
    assert "add --to-accuracy" in capsys.readouterr().err
    assert cli.main(["bench", "--models", "--race-plot", str(tmp_path / "r.png")]) == 2
    assert "--race-plot is used only by the race" in capsys.readouterr().err
    assert cli.main(["bench", "--models", "--to-accuracy", "0.9", "--mnist-dir", "/nope"]) == 2
    assert "/nope" in capsys.readouterr().err
    missing = tmp_path / "missing.py"
    assert (
        cli.main(["bench", "--models", "--to-accuracy", "0.9", "--race-config", str(missing)]) == 2
    )
    assert "config file not found" in capsys.readouterr().err


def test_bench_races_each_config_and_dtype_and_draws_them(tmp_path, monkeypatch, capsys):
    """The CLI path around the race (its training is tested above): one race per config and
    dtype, on the loaded splits, into the JSON and the plot."""
    calls = []

    def fake_race(config, train, test, target, log=None):
        calls.append((config.compute_dtype, config.batch_size, train, test, target))
        curve = [{"epochs": 1.0, "train_s": 0.1, "accuracy": 0.995}]
        return {
            "config": {"batch_size": config.batch_size, "num_epochs": 1},
            "compute_dtype": config.compute_dtype,
            "target": target,
            "reached": True,
            "train_s_to_target": 0.1,
            "epochs_to_target": 1.0,
            "compile_s": 1.0,
            "eval_s": 0.1,
            "epoch_s": [0.1],
            "final_accuracy": 0.995,
            "curve": curve,
        }

    monkeypatch.setattr(tta, "load_splits", lambda config, mnist_dir: ("TRAIN", "TEST"))
    monkeypatch.setattr(tta, "time_to_accuracy", fake_race)
    plot = tmp_path / "race.png"
    argv = ["bench", "--json", "--models", "--seconds", "0.01"]
    argv += ["--to-accuracy", "0.99", "--race-plot", str(plot)]
    argv += ["--race-config", str(TINY), str(ROOT / "configs" / "classifier_race.py")]
    argv += ["--race-dtypes", "float32", "bfloat16"]
    monkeypatch.chdir(tmp_path)  # no workdirs/classifier here: the read timing is skipped
    assert cli.main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert [(r["compute_dtype"], r["config"]["batch_size"]) for r in out["time_to_accuracy"]] == [
        ("float32", 32),
        ("bfloat16", 32),
        ("float32", 256),
        ("bfloat16", 256),
    ]
    assert all(c[2:] == ("TRAIN", "TEST", 0.99) for c in calls)
    assert plot.stat().st_size > 1000
