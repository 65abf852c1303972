#!/usr/bin/env python3
"""Probe: how well does the 'two digits' detector tell fused pairs from wide single digits?

Fits ``digits_jax.pair_detector`` (a logistic head on a trained classifier's frozen
encoder features) to synthetic fused pairs vs single MNIST training digits, as training
does, then scores the blobs that the extractor returns on generated pages: among blobs
at least 0.75 as wide as tall, a *pair* covers two or more true digits, a *single*
matches one (IoU >= 0.5). Prints how many of each the head flags at a few thresholds.

    python scripts/probe_pair_detector.py --model workdirs/classifier --pages 200 --seed 0

``read`` uses the detector to split wide blobs (``reading.resolve_alternatives``);
``scripts/measure_extraction.py --model`` measures what that gains.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from measure_extraction import difficulties

from digits_jax import data, inference, layout, pair_detector
from digits_jax.errors import DigitsJaxError
from digits_jax.extraction import extract_digits
from digits_jax.synthetic_pages import generate_page, load_mnist_test

THRESHOLDS = (0.5, 0.7, 0.9, 0.95, 0.99)


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
            best = layout.iou_matrix(truth, [found.box]).max(initial=0.0)
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
    detector = pair_detector.fit(encoder, train_images, args.examples, epoch=0, seed=args.seed)
    train_acc = detector.train_accuracy

    kinds, crops = page_blobs(args.pages, args.seed)
    prob = detector.probability(pair_detector.encoder_features(encoder, crops))
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
