#!/usr/bin/env python3
"""Train the crop verifier (``digits_jax.verifier``) on generated pages of MNIST training digits.

Each page is generated and extracted as ``digits-jax read`` does; every crop extraction
offers (each digit, each union of two neighbours, the pieces of up to ``--cuts`` of a
wide blob's cuts and of a hard cut's re-cuts: ``verifier.offered``) is labelled by its
box against the truth (``verifier.labels_of``). The verifier starts from the classifier's
encoder (``--model``) and is trained on the pages but the last tenth, whose crops give
the accuracy printed. The pages' seed (2000) is apart from those the decision rules
are fitted on (1000, ``scripts/fit_decision_rules.py``) and measured on (0-5).

  python scripts/train_verifier.py --model workdirs/classifier
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys

import numpy as np
from fit_decision_rules import _init, _page
from tqdm import tqdm

from digits_jax import inference, verifier
from digits_jax.errors import DigitsJaxError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--model", default="workdirs/classifier", help="classifier whose encoder starts"
    )
    ap.add_argument("--from-scratch", action="store_true", help="start from a random encoder")
    ap.add_argument("--pages", type=int, default=800)
    ap.add_argument("--seed", type=int, default=2000, help="pages' seed (not 0-5, nor 1000)")
    ap.add_argument("--cuts", type=int, default=6, help="cuts of a blob whose pieces are taken")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", default=str(verifier.ASSET), help="parameters (.npz) to write")
    args = ap.parse_args(argv)
    for name, least in (("pages", 2), ("cuts", 1), ("epochs", 1), ("workers", 1)):
        if getattr(args, name) < least:
            ap.error(f"--{name} must be at least {least}")
    try:
        from digits_jax.data import load_split

        encoder = None
        if not args.from_scratch:
            encoder = inference.load_classifier(args.model).params["encoder"]
        digits, labels = load_split("train")
    except DigitsJaxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    jobs = [(args.seed, i, d) for i, d in enumerate(np.linspace(0.0, 1.0, args.pages))]
    rng = np.random.default_rng(args.seed)
    crops, classes, page_of = [], [], []
    data = (np.asarray(digits), np.asarray(labels))
    _init(*data)
    pool = multiprocessing.get_context("spawn").Pool(args.workers, _init, data)
    try:
        for i, (lines, truth) in enumerate(tqdm(pool.imap(_page, jobs, 4), "pages", len(jobs))):
            items = verifier.offered(lines, rng, args.cuts)
            crops += [np.round(d.crop * 255).astype(np.uint8) for d in items]
            classes.append(verifier.labels_of([d.box for d in items], truth))
            page_of += [i] * len(items)
    finally:
        pool.terminate()
    x, y, page = np.stack(crops), np.concatenate(classes), np.array(page_of)
    train = page < round(0.9 * args.pages)
    bar = tqdm(total=args.epochs, desc="epochs")

    def progress(epoch: int, loss: float) -> None:
        bar.update()
        bar.set_postfix(loss=f"{loss:.4f}")

    try:
        params = verifier.fit(x[train], y[train], encoder, args.epochs, progress=progress)
    except DigitsJaxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    finally:
        bar.close()
    probs = verifier.probabilities(x[~train].astype(np.float32) / 255, params)
    right = probs.argmax(axis=1) == y[~train]
    verifier.save(params, args.out)

    def accuracy(where: np.ndarray) -> float | None:
        return round(float(right[where].mean()), 4) if where.any() else None

    out = {
        "out": args.out,
        "pages": args.pages,
        "seed": args.seed,
        "crops": {c: int(np.sum(y == k)) for k, c in enumerate(verifier.CLASSES)},
        "held_out_accuracy": accuracy(np.ones(len(right), bool)),
        "held_out_accuracy_by_class": {
            c: accuracy(y[~train] == k) for k, c in enumerate(verifier.CLASSES)
        },
    }
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
