"""The pretraining experiment's statistics and report, on made-up results (no training)."""

import numpy as np

from digits_jax import config_lib, experiments


def _fake_experiment(tmp_path):
    rng = np.random.default_rng(0)
    results = []
    for seed in range(4):
        for augmented in (True, False):
            for arm, shift in (("scratch", 0.0), ("finetune", 0.001), ("frozen", -0.02)):
                acc = 0.99 + shift + rng.normal(0, 0.0005)
                results.append(
                    {
                        "seed": seed,
                        "arm": arm,
                        "augmented": augmented,
                        "test_accuracy": acc,
                        "curve": [acc - 0.01, acc],
                        "own_accuracy": 0.95 + shift + rng.normal(0, 0.002),
                    }
                )
    grid = tmp_path / "grid.png"
    grid.write_bytes(b"png")
    return {
        "results": results,
        "handwriting": "made-up photos",
        "seeds": 4,
        "epochs": 2,
        "dae_epochs": 1,
        "config": {"seed": 0},
        "dae_config": {"seed": 0},
        "seconds": 60.0,
        "machine": {"cpus": 2, "backend": "cpu", "platform": "x", "jax": "0", "flax": "0"},
        "reconstructions": str(grid),
    }


def test_summary_tests_each_arm_against_scratch(tmp_path):
    summary = experiments.summarise(_fake_experiment(tmp_path))
    assert len(summary) == 6
    frozen = next(r for r in summary if r["arm"] == "frozen" and r["augmented"])
    assert frozen["mnist_diff"] < -0.015 and frozen["mnist_p"] < 0.01
    scratch = next(r for r in summary if r["arm"] == "scratch" and not r["augmented"])
    assert "mnist_p" not in scratch and scratch["n"] == 4


def test_report_and_plots(tmp_path):
    experiment = _fake_experiment(tmp_path)
    summary = experiments.summarise(experiment)
    paths = experiments.plot(experiment, summary, tmp_path)
    assert all(p.stat().st_size > 0 for p in paths)
    report = experiments.write_report(experiment, summary, tmp_path, "cmd --budget reduced")
    text = report.read_text()
    assert "| frozen | yes |" in text and "16/21" in text and "9/21" in text
    assert "a significant loss in MNIST accuracy" in text


def test_without_augmentation_zeroes_every_augment_key():
    config = config_lib.base_config()
    config.augment_rotation = 10.0
    config.augment_shift = 2
    plain = experiments.without_augmentation(config)
    assert all(plain[k] == 0 for k in experiments.AUG_KEYS)
    assert config.augment_rotation == 10.0  # the original is untouched
