#!/usr/bin/env python3
"""Probe: can a 'two digits' detector tell fused pairs from wide single digits?

Fits a logistic head on a trained classifier's frozen encoder features (512) to
synthetic fused pairs vs single MNIST training digits (``digits_jax.fused_pairs``),
then scores the blobs that the extractor returns on generated pages: among blobs at
least 0.75 as wide as tall, a *pair* covers two or more true digits, a *single*
matches one (IoU >= 0.5). Prints how many of each the head flags at a few thresholds.

    python scripts/probe_pair_detector.py --model workdirs/classifier --pages 200 --seed 0

It measures a way to close the extraction gap; the pipeline does not use it yet.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from measure_extraction import difficulties, iou_matrix

from digits_jax import data, fused_pairs, inference, models
from digits_jax.errors import DigitsJaxError
from digits_jax.extraction import extract_digits
from digits_jax.synthetic_pages import generate_page, load_mnist_test

THRESHOLDS = (0.5, 0.7, 0.9, 0.95, 0.99)


def encoder_features(params: dict, crops: np.ndarray, batch: int = 512) -> np.ndarray:
    """The frozen encoder's 512 features of (N, 28, 28) crops."""
    encoder = models.Encoder(conv_impl="xla")
    apply = jax.jit(lambda x: encoder.apply({"params": params}, x).reshape(x.shape[0], -1))
    out = [
        np.asarray(apply(jnp.asarray(crops[i : i + batch, ..., None])))
        for i in range(0, len(crops), batch)
    ]
    return np.concatenate(out)


def fit_logistic(x: np.ndarray, y: np.ndarray, steps: int = 500) -> tuple:
    """Standardised logistic regression (Adam, small L2): returns (mean, std, w, b)."""
    mean, std = x.mean(0), x.std(0) + 1e-6
    xs, ys = jnp.asarray((x - mean) / std), jnp.asarray(y, jnp.float32)

    def loss(p):
        z = xs @ p["w"] + p["b"]
        return jnp.mean(optax.sigmoid_binary_cross_entropy(z, ys)) + 1e-4 * jnp.sum(p["w"] ** 2)

    opt = optax.adam(0.01)

    @jax.jit
    def step(p, state):
        updates, state = opt.update(jax.grad(loss)(p), state, p)
        return optax.apply_updates(p, updates), state

    p = {"w": jnp.zeros(x.shape[1]), "b": jnp.zeros(())}
    state = opt.init(p)
    for _ in range(steps):
        p, state = step(p, state)
    return mean, std, np.asarray(p["w"]), float(p["b"])


def page_blobs(pages: int, seed: int) -> tuple[list[str], np.ndarray]:
    """Kinds ("pair", "single", "other") and crops of the wide blobs on generated pages."""
    digits, labels = load_mnist_test()
    kinds, crops = [], []
    for i, d in enumerate(difficulties(pages, 0.0, 1.0)):
        page = generate_page(np.random.default_rng([seed, i]), digits, labels, float(d))
        truth = [t.box for line in page.lines for t in line]
        for found in (g for line in extract_digits(page.image) for g in line):
            x, y, w, h = found.box
            if w < 0.75 * h:
                continue
            covered = sum(
                max(0, min(tx + tw, x + w) - max(tx, x)) * max(0, min(ty + th, y + h) - max(ty, y))
                > 0.6 * tw * th
                for tx, ty, tw, th in truth
            )
            best = iou_matrix(truth, [found.box]).max(initial=0.0)
            kinds.append("pair" if covered >= 2 else "single" if best >= 0.5 else "other")
            crops.append(found.crop)
    return kinds, np.stack(crops).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("workdirs/classifier"))
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--examples", type=int, default=6000, help="pairs, and as many singles")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        classifier = inference.load_classifier(args.model)
        train_images, _ = data.load_split("train")
    except DigitsJaxError as error:
        print(f"probe_pair_detector: error: {error}", file=sys.stderr)
        return error.exit_code
    encoder = classifier.params["encoder"]
    rng = np.random.default_rng(args.seed + 1)
    pairs, singles = fused_pairs.pairs_and_singles(rng, train_images, args.examples)
    x = encoder_features(encoder, np.concatenate([pairs, singles]))
    y = np.r_[np.ones(len(pairs)), np.zeros(len(singles))]
    mean, std, w, b = fit_logistic(x, y)
    train_acc = float(np.mean((((x - mean) / std) @ w + b > 0) == (y > 0.5)))

    kinds, crops = page_blobs(args.pages, args.seed)
    z = ((encoder_features(encoder, crops) - mean) / std) @ w + b
    prob = 1.0 / (1.0 + np.exp(-z))
    kinds_a = np.array(kinds)
    counts = {k: int((kinds_a == k).sum()) for k in ("pair", "single", "other")}
    flagged = {
        str(t): {k: int((prob[kinds_a == k] > t).sum()) for k in ("pair", "single")}
        for t in THRESHOLDS
    }
    report = {"train_accuracy": train_acc, "blobs": counts, "flagged": flagged, **vars(args)}
    report["model"] = str(args.model)
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(f"head fitted on {2 * args.examples} synthetic crops: train accuracy {train_acc:.3f}")
    print(f"wide blobs on {args.pages} pages (seed {args.seed}): {counts}")
    for t, f in flagged.items():
        pairs_s = f"pairs {f['pair']}/{counts['pair']}"
        print(f"  p > {t:4s}: {pairs_s}, singles {f['single']}/{counts['single']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
