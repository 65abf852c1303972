#!/usr/bin/env python3
"""Train the two-digit reader (``digits_jax.pair_reader``) on fused pairs of MNIST training digits.

``--pairs`` synthetic fused pairs of training digits (``fused_pairs``), each labelled by
its left and right digit, and every training digit alone, labelled by itself, normalised
as extraction normalises a blob. The reader starts from the classifier's encoder
(``--model``) and is trained on all but ``--held-out`` of them (drawn at random), whose
accuracy is printed: over all, on the pairs, on the singles, and of pair against single.

  python scripts/train_pair_reader.py --model workdirs/classifier
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
from tqdm import tqdm

from digits_jax import fused_pairs, inference, pair_reader, verifier
from digits_jax.errors import DigitsJaxError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--model", default="workdirs/classifier", help="classifier whose encoder starts"
    )
    ap.add_argument("--pairs", type=int, default=200_000, help="fused pairs to train on")
    ap.add_argument(
        "--digits", type=int, default=None, help="the first N training digits only (default: all)"
    )
    ap.add_argument("--held-out", type=int, default=5_000, help="examples kept for the score")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", default=str(pair_reader.ASSET), help="parameters (.npz) to write")
    args = ap.parse_args(argv)
    for name, least in (("pairs", 1), ("held_out", 1), ("epochs", 1), ("digits", 1)):
        if getattr(args, name) is not None and getattr(args, name) < least:
            ap.error(f"--{name.replace('_', '-')} must be at least {least}")
    try:
        from digits_jax.data import load_split

        encoder = inference.load_classifier(args.model).params["encoder"]
        digits, labels = load_split("train")
        digits, labels = digits[: args.digits], labels[: args.digits]
    except DigitsJaxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    rng = np.random.default_rng(args.seed)
    x, y = fused_pairs.labelled_pairs_and_singles(rng, digits, labels, args.pairs)
    order = rng.permutation(len(y))
    held, train = order[: args.held_out], order[args.held_out :]
    bar = tqdm(total=args.epochs, desc="epochs")

    def progress(epoch: int, loss: float) -> None:
        bar.update()
        bar.set_postfix(loss=f"{loss:.4f}")

    try:
        params = verifier.fit(
            x[train], y[train], encoder, args.epochs, progress=progress, classes=pair_reader.CLASSES
        )
    except DigitsJaxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    finally:
        bar.close()
    truth = y[held]
    guess = pair_reader.probabilities(x[held].astype(np.float32) / 255, params).argmax(axis=1)
    is_pair = truth >= pair_reader.SINGLES

    def accuracy(right: np.ndarray) -> float | None:
        return round(float(right.mean()), 4) if right.size else None

    verifier.save(params, args.out)
    out = {
        "out": args.out,
        "pairs": args.pairs,
        "singles": len(digits),
        "held_out": len(held),
        "held_out_accuracy": accuracy(guess == truth),
        "pairs_read_right": accuracy((guess == truth)[is_pair]),
        "singles_read_right": accuracy((guess == truth)[~is_pair]),
        "pair_or_single_right": accuracy((guess >= pair_reader.SINGLES) == is_pair),
    }
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
