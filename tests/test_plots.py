"""The figures: each is written whole (atomically) as a PNG with something drawn on it."""

from __future__ import annotations

import cv2
import numpy as np

from digits_jax import plots


def _drawn(path) -> np.ndarray:
    image = cv2.imread(str(path))
    assert image is not None and image.shape[0] > 100 and image.shape[1] > 100
    assert image.std() > 10  # not a blank canvas
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    return image


def test_curves_with_and_without_accuracy(tmp_path):
    rows = [{"epoch": e, "train_loss": 1 / e, "test_loss": 1.2 / e} for e in (1, 2, 3)]
    plots.plot_curves(rows, tmp_path / "a" / "loss.png", title="dae")
    plots.plot_curves(
        [{**r, "test_accuracy": 0.9 + 0.03 * r["epoch"]} for r in rows], tmp_path / "b" / "c.png"
    )
    narrow, wide = _drawn(tmp_path / "a" / "loss.png"), _drawn(tmp_path / "b" / "c.png")
    assert wide.shape[1] > 1.5 * narrow.shape[1]  # a second panel for the accuracy


def test_reconstructions_grid(tmp_path):
    rng = np.random.default_rng(0)
    clean, noisy, recon = (rng.random((6, 28, 28, 1)) for _ in range(3))
    plots.plot_reconstructions(clean, noisy, recon, tmp_path / "r.png")
    _drawn(tmp_path / "r.png")


def test_races_drawn_whether_or_not_they_reached_the_target(tmp_path):
    def race(dtype: str, reached: bool) -> dict:
        curve = [
            {"epochs": e / 2, "train_s": 0.05 * e, "accuracy": 0.95 + 0.01 * e}
            for e in (1, 2, 3, 4)
        ]
        return {
            "config": {"batch_size": 256, "num_epochs": 2},
            "compute_dtype": dtype,
            "target": 0.99 if reached else 1.0,
            "reached": reached,
            "train_s_to_target": 0.2 if reached else None,
            "curve": curve,
        }

    plots.plot_races([race("float32", True), race("bfloat16", False)], tmp_path / "race.png", "t")
    _drawn(tmp_path / "race.png")


def test_race_labels_name_what_differs_between_the_races():
    def race(dtype: str, impl: str) -> dict:
        config = {"batch_size": 256, "num_epochs": 8, "compute_dtype": dtype, "conv_impl": impl}
        return {"config": {**config, "seed": 0}, "compute_dtype": dtype}

    same = plots.race_labels([race("float32", "auto"), race("bfloat16", "auto")])
    assert same == ["batch 256, 8 ep, float32", "batch 256, 8 ep, bfloat16"]
    both = plots.race_labels([race("float32", "auto"), race("float32", "xla")])
    assert both == [
        "batch 256, 8 ep, float32, conv_impl=auto",
        "batch 256, 8 ep, float32, conv_impl=xla",
    ]
