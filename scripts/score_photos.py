#!/usr/bin/env python3
"""Scores the photo reader against labelled photos.

    python scripts/score_photos.py ../shared/photos/labels.tsv ../shared/photos \
        --model workdirs/classifier

LABELS is a TSV of ``file<TAB>true digits in reading order, '|' between lines``
('#' lines are comments). Digit accuracy = 1 - (edit distance between the true
and the read digit strings) / (number of true digits), summed over photos; a
photo's line structure is right when it has as many lines as the truth, each
with as many digits.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from digits_jax import inference, reading
from digits_jax.errors import DigitsJaxError
from digits_jax.scoring import read_labels, score


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("labels", type=Path)
    parser.add_argument("photo_dir", type=Path)
    parser.add_argument(
        "--model", type=Path, action="append", help="classifier workdir; repeat for an ensemble"
    )
    parser.add_argument("--tta", type=int, default=1, help="test-time views to average")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        labels = read_labels(args.labels)
        model = inference.load_ensemble(args.model or [Path("workdirs/classifier")])
    except (OSError, DigitsJaxError) as error:
        print(f"score_photos: error: {error}", file=sys.stderr)
        return 2
    names = sorted(labels)
    results, _ = reading.read_pages([args.photo_dir / n for n in names], model, tta=args.tta)
    rows = {}
    for name, result in zip(names, results, strict=True):
        read = "|".join(result.text_lines())
        rows[name] = {**score(labels[name], read), "error": result.error}
    digits = sum(r["digits"] for r in rows.values())
    errors = sum(r["errors"] for r in rows.values())
    summary = {
        "digit_accuracy": 1 - errors / digits if digits else 0.0,
        "digits": digits,
        "errors": errors,
        "photos_with_right_lines": sum(r["lines_right"] for r in rows.values()),
        "photos": len(rows),
        "models": [str(m) for m in args.model or ["workdirs/classifier"]],
        "tta": args.tta,
    }
    if args.json:
        print(json.dumps({"summary": summary, "photos": rows}))
    else:
        for name, r in rows.items():
            mark = "ok " if r["lines_right"] else "BAD"
            tally = f"{r['errors']:2d}/{r['digits']:<3d}"
            print(f"{mark} {tally} {name}: read {r['read']} (true {r['truth']})")
        right = f"{summary['photos_with_right_lines']}/{summary['photos']}"
        accuracy = f"{100 * summary['digit_accuracy']:.1f}% ({digits - errors}/{digits})"
        print(f"digit accuracy {accuracy}, line structure right on {right} photos")
    return 0


if __name__ == "__main__":
    sys.exit(main())
