"""Figures a user would rather look at than read: training curves, reconstructions, races.

matplotlib is imported on first use: reading a photo never pays for it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    """Writes a figure atomically, so a reader never sees half a PNG."""
    plt = _pyplot()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.remove(tmp)


def plot_curves(rows: Sequence[dict[str, float]], path: str | Path, title: str = "") -> None:
    """Loss (train and test) and, when present, test accuracy per epoch."""
    epochs = [r["epoch"] for r in rows]
    has_accuracy = any("test_accuracy" in r for r in rows)
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2 if has_accuracy else 1, figsize=(10 if has_accuracy else 5, 3.6))
    axes = np.atleast_1d(axes)
    for key, label in (("train_loss", "train"), ("test_loss", "test")):
        if any(key in r for r in rows):
            axes[0].plot(epochs, [r.get(key, np.nan) for r in rows], marker="o", label=label)
    axes[0].set(xlabel="epoch", ylabel="loss", title="loss")
    axes[0].set_yscale("log")
    axes[0].legend()
    if has_accuracy:
        acc = [100 * r.get("test_accuracy", np.nan) for r in rows]
        axes[1].plot(epochs, acc, marker="o", color="tab:green")
        axes[1].set(xlabel="epoch", ylabel="%", title=f"test accuracy (last {acc[-1]:.2f}%)")
        axes[1].grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    _save(fig, Path(path))


def plot_reconstructions(
    clean: np.ndarray, noisy: np.ndarray, reconstructed: np.ndarray, path: str | Path
) -> None:
    """A grid of test digits: clean, noisy input and the DAE's reconstruction, one row each."""
    n = len(clean)
    fig, axes = _pyplot().subplots(3, n, figsize=(1.1 * n, 3.6))
    for row, (images, label) in enumerate(
        ((clean, "clean"), (noisy, "noisy"), (reconstructed, "reconstructed"))
    ):
        for col in range(n):
            ax = axes[row, col]
            ax.imshow(np.squeeze(images[col]), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[row, 0].set_ylabel(label)
    _save(fig, Path(path))


def race_labels(races: Sequence[dict[str, Any]]) -> list[str]:
    """A legend entry per race: batch, epochs and dtype, then every other config value
    that differs between the races (``conv_impl=xla``), so no two entries read alike."""
    shown = {"batch_size", "num_epochs", "compute_dtype"}
    keys = sorted({k for r in races for k in r["config"]} - shown)
    differ = [k for k in keys if len({repr(r["config"].get(k)) for r in races}) > 1]
    labels = []
    for r in races:
        c = r["config"]
        extra = "".join(f", {k}={c.get(k)}" for k in differ)
        labels.append(f"batch {c['batch_size']}, {c['num_epochs']} ep, {r['compute_dtype']}{extra}")
    return labels


def plot_races(races: Sequence[dict[str, Any]], path: str | Path, title: str = "") -> None:
    """Test accuracy against training seconds for each ``time_to_accuracy`` result, the
    target drawn across and each race's first point at or above it marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for r, label in zip(races, race_labels(races), strict=True):
        seconds = [p["train_s"] for p in r["curve"]]
        accuracy = [100 * p["accuracy"] for p in r["curve"]]
        (line,) = ax.plot(seconds, accuracy, marker=".", label=label)
        if r["reached"]:
            ax.plot(
                r["train_s_to_target"],
                100 * r["target"],
                "o",
                color=line.get_color(),
                ms=9,
                mfc="none",
            )
    if races:
        ax.axhline(100 * races[0]["target"], color="grey", ls="--", lw=1)
        best = max(max(100 * p["accuracy"] for p in r["curve"]) for r in races)
        ax.set_ylim(max(90.0, 100 * races[0]["target"] - 2.0), min(100.0, best + 0.3))
    ax.set(xlabel="training seconds (compile and evaluation excluded)", ylabel="test accuracy, %")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    _save(fig, Path(path))
