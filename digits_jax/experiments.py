"""The pretraining experiment: does the DAE's encoder help, over seeds, with statistics?

For each seed a DAE is pretrained, then the classifier is trained in three arms
(from scratch; from the grafted encoder, fine-tuned; from it, frozen), each with
and without augmentation. Every run is scored on the MNIST test set and on
handwriting MNIST never saw: labelled real photos when a folder of them is
given, else generated photographed pages.
"""

from __future__ import annotations

import json
import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np

from digits_jax import config_lib, inference, pretrain, reading, scoring, train, training_loop

ARMS = ("scratch", "finetune", "frozen")
AUG_KEYS = (
    "augment_shift",
    "augment_rotation",
    "augment_scale",
    "augment_shear",
    "augment_translate",
    "augment_elastic_alpha",
    "augment_stroke",
)
ORIGINAL = {"mnist": 0.9915, "own_scratch": 16 / 21, "own_pretrained": 9 / 21}
BUDGETS = {
    "reduced": {"seeds": 3, "epochs": 3, "dae_epochs": 1},
    "full": {"seeds": 5, "epochs": 15, "dae_epochs": 5},
}


@dataclass(frozen=True)
class Run:
    seed: int
    arm: str
    augmented: bool

    @property
    def name(self) -> str:
        return f"seed{self.seed}_{self.arm}_{'aug' if self.augmented else 'noaug'}"


def without_augmentation(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    config = config.copy_and_resolve_references()
    for key in AUG_KEYS:
        config[key] = type(config[key])(0)
    return config


def handwriting_set(photo_dir: Path | None, pages: int = 6) -> tuple[str, list[Path], list[str]]:
    """Real labelled photos when present, else generated pages (written to a temp folder)."""
    if photo_dir and (photo_dir / "labels.tsv").exists():
        labels = scoring.read_labels(photo_dir / "labels.tsv")
        names = sorted(labels)
        paths, truths = [photo_dir / n for n in names], [labels[n] for n in names]
        return f"{len(names)} real photos ({photo_dir.name}/)", paths, truths
    import cv2

    from digits_jax import data, synthetic_pages

    images, labels = data.load_split("test")
    out = Path(tempfile.mkdtemp(prefix="digits_jax_pages_"))
    paths, truths = [], []
    for i in range(pages):
        page = synthetic_pages.generate_page(
            np.random.default_rng(1000 + i), images, labels, difficulty=i / max(1, pages - 1)
        )
        path = out / f"page{i}.jpg"
        cv2.imwrite(str(path), page.image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        paths.append(path)
        truths.append(page.text())
    return f"{pages} generated pages", paths, truths


def digit_accuracy(workdir: Path, paths: list[Path], truths: list[str]) -> float:
    model = inference.load_ensemble([workdir])
    results, _ = reading.read_pages(paths, model)
    errors = digits = 0
    for result, truth in zip(results, truths, strict=True):
        s = scoring.score(truth, "|".join(result.text_lines()))
        errors += s["errors"]
        digits += s["digits"]
    return 1 - errors / digits


def run_experiment(
    base: ml_collections.ConfigDict,
    dae_base: ml_collections.ConfigDict,
    out_dir: Path,
    seeds: int,
    epochs: int,
    dae_epochs: int,
    photo_dir: Path | None = None,
    log: Callable[[str], None] = training_loop.log,
) -> dict[str, Any]:
    """Trains every arm for every seed under ``out_dir/runs``; returns all figures."""
    runs_dir = out_dir / "runs"
    source, paths, truths = handwriting_set(photo_dir)
    results: list[dict[str, Any]] = []
    began = time.perf_counter()
    for seed in range(seeds):
        dae_config = dae_base.copy_and_resolve_references()
        dae_config.update({"seed": seed, "num_epochs": dae_epochs, "progress": False})
        dae_dir = runs_dir / f"seed{seed}_dae"
        dae = pretrain.train_and_evaluate(dae_config, dae_dir)
        log(f"seed {seed}: DAE test MSE {dae['test_loss']:.5f}")
        for augmented in (True, False):
            for arm in ARMS:
                run = Run(seed, arm, augmented)
                config = base if augmented else without_augmentation(base)
                config = config.copy_and_resolve_references()
                config.update(
                    {
                        "seed": seed,
                        "num_epochs": epochs,
                        "progress": False,
                        "freeze_encoder": arm == "frozen",
                    }
                )
                workdir = runs_dir / run.name
                init_from = None if arm == "scratch" else dae_dir
                train.train_and_evaluate(config, workdir, init_from=init_from)
                rows = training_loop.read_metrics(workdir)
                own = digit_accuracy(workdir, paths, truths)
                results.append(
                    {
                        "seed": seed,
                        "arm": arm,
                        "augmented": augmented,
                        "test_accuracy": rows[-1]["test_accuracy"],
                        "curve": [r["test_accuracy"] for r in rows],
                        "own_accuracy": own,
                    }
                )
                log(
                    f"{run.name}: MNIST {100 * rows[-1]['test_accuracy']:.2f}%, "
                    f"own handwriting {100 * own:.1f}%"
                )
    return {
        "results": results,
        "handwriting": source,
        "seeds": seeds,
        "epochs": epochs,
        "dae_epochs": dae_epochs,
        "config": config_lib.to_json(base),
        "dae_config": config_lib.to_json(dae_base),
        "seconds": round(time.perf_counter() - began, 1),
        "machine": machine(),
        "reconstructions": str(runs_dir / "seed0_dae" / pretrain.RECONSTRUCTIONS_FILE),
    }


def machine() -> dict[str, Any]:
    import os

    import flax

    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "backend": jax.default_backend(),
        "device": jax.devices()[0].device_kind,
        "jax": jax.__version__,
        "flax": flax.__version__,
    }


def summarise(experiment: dict[str, Any]) -> list[dict[str, Any]]:
    """Mean and standard deviation per arm, and the paired test against scratch."""
    from scipy import stats

    rows = []
    results = experiment["results"]
    for augmented in (True, False):
        by_arm = {
            arm: sorted(
                (r for r in results if r["arm"] == arm and r["augmented"] == augmented),
                key=lambda r: r["seed"],
            )
            for arm in ARMS
        }
        for arm, runs in by_arm.items():
            mnist = np.array([r["test_accuracy"] for r in runs])
            own = np.array([r["own_accuracy"] for r in runs])
            row = {
                "arm": arm,
                "augmented": augmented,
                "n": len(runs),
                "mnist_mean": float(mnist.mean()),
                "mnist_std": float(mnist.std(ddof=1)) if len(runs) > 1 else 0.0,
                "own_mean": float(own.mean()),
                "own_std": float(own.std(ddof=1)) if len(runs) > 1 else 0.0,
            }
            if arm != "scratch" and len(runs) > 1:
                base = np.array([r["test_accuracy"] for r in by_arm["scratch"]])
                base_own = np.array([r["own_accuracy"] for r in by_arm["scratch"]])
                row["mnist_diff"] = float((mnist - base).mean())
                row["mnist_p"] = _paired_p(stats, mnist, base)
                row["own_diff"] = float((own - base_own).mean())
                row["own_p"] = _paired_p(stats, own, base_own)
            rows.append(row)
    return rows


def _paired_p(stats: Any, a: np.ndarray, b: np.ndarray) -> float | None:
    if np.allclose(a, b):
        return 1.0
    p = stats.ttest_rel(a, b).pvalue
    return None if np.isnan(p) else float(p)


def plot(experiment: dict[str, Any], summary: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    """Per-epoch accuracy per arm, a bar chart with error bars, and the DAE grid."""
    from digits_jax.plots import _pyplot, _save

    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for ax, augmented in zip(axes, (True, False), strict=True):
        for arm in ARMS:
            curves = np.array(
                [
                    r["curve"]
                    for r in experiment["results"]
                    if r["arm"] == arm and r["augmented"] == augmented
                ]
            )
            epochs = np.arange(1, curves.shape[1] + 1)
            mean, std = 100 * curves.mean(0), 100 * curves.std(0)
            ax.plot(epochs, mean, marker="o", label=arm)
            ax.fill_between(epochs, mean - std, mean + std, alpha=0.2)
        ax.set(
            title=("with" if augmented else "without") + " augmentation",
            xlabel="epoch",
            ylabel="MNIST test accuracy (%)",
        )
        ax.grid(alpha=0.3)
        ax.legend()
    curves_path = out_dir / "pretraining_curves.png"
    _save(fig, curves_path)

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    labels = [f"{r['arm']}\n{'aug' if r['augmented'] else 'no aug'}" for r in summary]
    x = np.arange(len(summary))
    for ax, key, title in (
        (axes[0], "mnist", "MNIST test accuracy (%)"),
        (axes[1], "own", f"digit accuracy, {experiment['handwriting']} (%)"),
    ):
        ax.bar(
            x,
            [100 * r[f"{key}_mean"] for r in summary],
            yerr=[100 * r[f"{key}_std"] for r in summary],
            capsize=4,
            color=["tab:blue", "tab:orange", "tab:green"] * 2,
        )
        ax.set_xticks(x, labels, fontsize=8)
        ax.set_title(title, fontsize=10)
        lo = min(100 * (r[f"{key}_mean"] - r[f"{key}_std"]) for r in summary)
        ax.set_ylim(max(0, lo - 2), 100)
    bars_path = out_dir / "pretraining_bars.png"
    _save(fig, bars_path)
    grid_path = out_dir / "pretraining_dae_reconstructions.png"
    shutil.copyfile(experiment["reconstructions"], grid_path)
    return [curves_path, bars_path, grid_path]


def _pct(mean: float, std: float) -> str:
    return f"{100 * mean:.2f} ± {100 * std:.2f}"


def _p(value: float | None) -> str:
    if value is None:
        return "n/a"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def _p_clause(value: float) -> str:
    """The p-value as a clause: p = 0.123, or p < 0.001."""
    text = _p(value)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def _diff(row: dict[str, Any], key: str) -> str:
    if f"{key}_diff" not in row:
        return ""
    return f"{100 * row[f'{key}_diff']:+.2f} ({_p(row.get(f'{key}_p'))})"


def write_report(
    experiment: dict[str, Any], summary: list[dict[str, Any]], out_dir: Path, command: str
) -> Path:
    """reports/pretraining.md: the table, what it shows, how to rerun it."""
    lines = [
        "# Does DAE pretraining help? The original's experiment, with statistics",
        "",
        f"Command: `{command}`  ",
        f"{experiment['seeds']} seeds, {experiment['epochs']} classifier epochs, "
        f"{experiment['dae_epochs']} DAE epochs; handwriting MNIST never saw: "
        f"{experiment['handwriting']}. Ran in {experiment['seconds'] / 60:.1f} min on "
        f"{experiment['machine']['cpus']} {experiment['machine']['backend']} cores "
        f"({experiment['machine']['platform']}, jax {experiment['machine']['jax']}, "
        f"flax {experiment['machine']['flax']}).",
        "",
        "| arm | augmentation | MNIST test accuracy (%) | vs scratch (p) "
        "| own-handwriting digit accuracy (%) | vs scratch (p) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in summary:
        lines.append(
            f"| {r['arm']} | {'yes' if r['augmented'] else 'no'} | "
            f"{_pct(r['mnist_mean'], r['mnist_std'])} | {_diff(r, 'mnist')} | "
            f"{_pct(r['own_mean'], r['own_std'])} | {_diff(r, 'own')} |"
        )
    lines += [
        f"| the original, scratch | no | {100 * ORIGINAL['mnist']:.2f} (one run) | | "
        f"{100 * ORIGINAL['own_scratch']:.0f} (16/21, one run) | |",
        f"| the original, pretrained | no | no gain reported | | "
        f"{100 * ORIGINAL['own_pretrained']:.0f} (9/21, one run) | |",
        "",
        "Mean ± standard deviation over seeds; 'vs scratch' is the mean paired difference "
        "(same seed) and the p-value of a paired t-test.",
        "",
        "## What it shows",
        "",
        *conclusions(summary),
        "",
        "![accuracy per epoch](pretraining_curves.png)",
        "![bars](pretraining_bars.png)",
        "![DAE reconstructions, seed 0](pretraining_dae_reconstructions.png)",
        "",
        "## Rerun",
        "",
        "```bash",
        "python scripts/compare_pretraining.py --budget reduced   # 3 seeds x 3 epochs, CPU",
        "python scripts/compare_pretraining.py --budget full      # 5 seeds x 15 epochs: a GPU job",
        "```",
        "",
        "Classifier config (augmented arms; the others set every `augment_*` to 0):",
        "",
        "```json",
        json.dumps(experiment["config"], indent=1, sort_keys=True),
        "```",
    ]
    path = out_dir / "pretraining.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def conclusions(summary: list[dict[str, Any]]) -> list[str]:
    """Plain sentences read off the table (significance at p < 0.05)."""
    out = []
    for r in summary:
        if r["arm"] == "scratch":
            continue
        aug = "with" if r["augmented"] else "without"
        for key, what in (("mnist", "MNIST accuracy"), ("own", "own-handwriting accuracy")):
            p = r.get(f"{key}_p")
            if p is None:
                continue
            diff = r[f"{key}_diff"]
            if diff == 0:
                out.append(f"- {r['arm']} ({aug} augmentation): no difference in {what}.")
                continue
            verdict = "a significant" if p < 0.05 else "no significant"
            sign = "gain" if diff > 0 else "loss"
            out.append(
                f"- {r['arm']} ({aug} augmentation): {verdict} {sign} in {what} "
                f"({100 * diff:+.2f} points, {_p_clause(p)})."
            )
    return out or ["- Too few seeds for a test (use at least 2)."]
