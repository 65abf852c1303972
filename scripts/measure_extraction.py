"""Measure the photo extraction pipeline on synthetic pages whose ground truth is known.

Pages of real MNIST test digits are generated over a range of difficulties
(``digits_jax.synthetic_pages``) and fed to ``digits_jax.extraction.extract_digits``.
A true digit counts as found when a predicted box overlaps it with IoU >= 0.5, boxes matched
one-to-one; predictions left over are spurious. A page has the right line structure when the
extractor returns as many lines as the truth, with the same number of digits in each.
With ``--model`` the boxes are the ones ``digits-jax read`` reports (the model may split
wide blobs and join neighbours, ``reading.resolve_alternatives``), and the digit accuracy
of the reading is added: 1 - (edit distance between the true and the read digits) / (true
digits). With ``--oracle`` each of extraction's alternatives (a wide blob's cuts, a union
with the next blob) is decided by the truth instead of a model: what the best decisions
could reach with the candidates extraction offers, so a miss there needs new candidates.

    python scripts/measure_extraction.py --pages 200 --seed 0 [--model DIR | --oracle]
        [--tta N] [--json] [--save-failures DIR]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment
from tqdm import tqdm

from digits_jax import layout
from digits_jax.errors import DigitsJaxError
from digits_jax.scoring import edit_distance
from digits_jax.synthetic_pages import Page, generate_page, load_mnist_test, stand_in_digits

IOU_MATCH = 0.5
Box = tuple[int, int, int, int]
# An extractor: BGR uint8 image -> lines of objects with a ``.box`` (x, y, w, h).
Extractor = Callable[[np.ndarray], Sequence[Sequence[Any]]]


def match_boxes(truth: Sequence[Box], pred: Sequence[Box]) -> list[tuple[int, int]]:
    """One-to-one (truth, pred) pairs with IoU >= 0.5, as many as possible, best IoU on ties."""
    iou = layout.iou_matrix(truth, pred)
    if iou.size == 0:
        return []
    ok = iou >= IOU_MATCH
    # Every valid pair is worth more than any IoU difference, so the count is maximised first.
    weight = np.where(ok, 1.0 + iou, 0.0)
    rows, cols = linear_sum_assignment(weight, maximize=True)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if ok[r, c]]


@dataclass
class PageResult:
    """What one page contributed to the totals."""

    index: int
    difficulty: float
    truth: int
    predicted: int
    found: int
    right_lines: bool
    missed: list[int]  # indices into the page's flattened truth
    spurious: list[int]  # indices into the flattened predictions
    errors: int | None = None  # edit distance of the read digits (when there is a model)


def score_page(
    index: int,
    difficulty: float,
    page: Page,
    pred_lines: Sequence[Sequence[Any]],
    reads: bool = False,
) -> PageResult:
    """Match one page's predicted boxes against its truth; with ``reads`` the predictions
    carry a ``digit`` too, and the reading's edit distance is counted."""
    truth = [d.box for line in page.lines for d in line]
    pred_lines = [line for line in pred_lines if len(line)]
    pred = [tuple(int(v) for v in d.box) for line in pred_lines for d in line]
    pairs = match_boxes(truth, pred)
    matched_t, matched_p = {t for t, _ in pairs}, {p for _, p in pairs}
    errors = None
    if reads:
        read = "".join(str(d.digit) for line in pred_lines for d in line)
        errors = edit_distance(page.text().replace("|", ""), read)
    return PageResult(
        index=index,
        difficulty=difficulty,
        truth=len(truth),
        predicted=len(pred),
        found=len(pairs),
        right_lines=[len(line) for line in pred_lines] == [len(line) for line in page.lines],
        missed=[i for i in range(len(truth)) if i not in matched_t],
        spurious=[i for i in range(len(pred)) if i not in matched_p],
        errors=errors,
    )


def summarise(results: Sequence[PageResult]) -> dict[str, Any]:
    """Found %, spurious %, right-line-structure % and exact-page % for a set of pages."""
    truth = sum(r.truth for r in results)
    pred = sum(r.predicted for r in results)
    found = sum(r.found for r in results)
    n = len(results)
    errors = [r.errors for r in results if r.errors is not None]
    accuracy = {}
    if errors and truth:
        accuracy["digit_accuracy_pct"] = round(100.0 * (1 - sum(errors) / truth), 2)
    return {
        "pages": n,
        "digits": truth,
        "predictions": pred,
        "found_pct": round(100.0 * found / truth, 2) if truth else None,
        "spurious_pct": round(100.0 * (pred - found) / pred, 2) if pred else 0.0,
        "line_structure_pct": round(100.0 * sum(r.right_lines for r in results) / n, 2)
        if n
        else None,
        "exact_pages_pct": round(
            100.0 * sum(r.right_lines and not r.missed and not r.spurious for r in results) / n, 2
        )
        if n
        else None,
        **accuracy,
    }


def annotate(page: Page, pred_lines: Sequence[Sequence[Any]], result: PageResult) -> np.ndarray:
    """The page with truth boxes in green (thick where missed) and predictions in red."""
    img = page.image.copy()
    truth = [d.box for line in page.lines for d in line]
    missed = set(result.missed)
    for i, (x, y, w, h) in enumerate(truth):
        cv2.rectangle(
            img, (x - 2, y - 2), (x + w + 1, y + h + 1), (0, 200, 0), 3 if i in missed else 1
        )
    for li, line in enumerate(pred_lines):
        for d in line:
            x, y, w, h = (int(v) for v in d.box)
            cv2.rectangle(img, (x, y), (x + w - 1, y + h - 1), (0, 0, 255), 1)
        if len(line):
            x, y, _, _ = (int(v) for v in line[0].box)
            cv2.putText(
                img,
                f"L{li}",
                (max(0, x - 40), y + 15),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.5,
                (0, 0, 255),
                1,
            )
    note = (
        f"d={result.difficulty:.2f} found {result.found}/{result.truth} "
        f"spurious {len(result.spurious)} lines {'ok' if result.right_lines else 'WRONG'}"
    )
    cv2.rectangle(img, (0, 0), (img.shape[1] - 1, 40), (0, 0, 0), -1)
    cv2.putText(img, note, (10, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 1, cv2.LINE_AA)
    return img


# --------------------------------------------------------------------------------------------
# Stand-in extractor: a plain threshold + connected components baseline. It is *not* the
# project's extractor; it exists so this script and its tests run before/without it.


@dataclass
class _Box:
    box: Box


def stand_in_extract(image: np.ndarray) -> list[list[_Box]]:
    """Adaptive threshold, connected components, size filter, lines by vertical overlap."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    block = max(31, (min(grey.shape) // 20) | 1)
    ink = cv2.adaptiveThreshold(
        grey, 255, cv2.ADAPTIVE_THRESH_GAUSSIAN_C, cv2.THRESH_BINARY_INV, block, 15
    )
    ink = cv2.morphologyEx(ink, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
    n, _, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    boxes = [tuple(int(v) for v in stats[i, :4]) for i in range(1, n)]
    boxes = [b for b in boxes if 15 <= b[3] <= 200 and b[2] <= 3 * b[3] and stats_area_ok(b)]
    lines: list[list[Box]] = []
    for b in sorted(boxes, key=lambda b: b[1] + b[3] / 2):
        for line in lines:
            ref = line[-1]
            overlap = min(b[1] + b[3], ref[1] + ref[3]) - max(b[1], ref[1])
            if overlap > 0.5 * min(b[3], ref[3]):
                line.append(b)
                break
        else:
            lines.append([b])
    return [[_Box(b) for b in sorted(line)] for line in lines]


def stats_area_ok(box: Box) -> bool:
    """Reject long thin runs (ruling, page edges) that survive the threshold."""
    return box[2] * box[3] >= 150


# --------------------------------------------------------------------------------------------


def load_extractor(stand_in: bool, model: Path | None = None, tta: int = 1) -> Extractor:
    """The project's ``extract_digits``, or the stand-in baseline when asked for; with a
    model, what ``digits-jax read`` reports (digits with boxes) instead."""
    if stand_in:
        return stand_in_extract
    if model is not None:
        return read_extractor(model, tta)
    try:
        from digits_jax.extraction import extract_digits
    except ImportError as exc:
        raise DigitsJaxError(
            f"cannot import digits_jax.extraction.extract_digits ({exc}); "
            "use --stand-in-extractor for the baseline"
        ) from exc
    return extract_digits


def read_extractor(model_dir: Path, tta: int = 1) -> Extractor:
    """Extraction and reading as ``digits-jax read [--tta N]`` does them, one page at a time."""
    from digits_jax import inference, reading
    from digits_jax.extraction import extract_digits

    model = inference.load_classifier(model_dir)

    def extract(image: np.ndarray) -> list[list[Any]]:
        page = reading.ExtractedPage("page", image, 1.0, extract_digits(image))
        result = reading.PageResult("page")
        reading.classify_pages([result], [page], model, tta=tta)
        return [line.digits for line in result.lines]

    return extract


def _matched(truth: Sequence[Box], digits: Sequence[Any]) -> int:
    return len(match_boxes(truth, [d.box for d in digits]))


def oracle_lines(lines: Sequence[Sequence[Any]], truth: Sequence[Box]) -> list[list[Any]]:
    """Extraction's alternatives (``Digit.recuts``, ``Digit.joined``, ``Digit.splits``)
    decided by the truth, blob by blob along each line (``reading.apply_recuts``, then
    ``reading.decide_alternatives``): the re-cut matching most replaces a hard cut's
    pieces when it matches more than they do, a union replaces two neighbours when it
    matches as many true digits as they do (one box fewer), the cut matching most
    replaces a wide blob when it matches more than the blob. Not a bound over every
    combination, but choices no recogniser could better one at a time."""
    from digits_jax.reading import apply_recuts, decide_alternatives

    recuts = {}
    for line in lines:
        for d, after in itertools.pairwise(line):
            best = max(d.recuts or [], key=lambda cut: _matched(truth, cut), default=None)
            if best is not None and _matched(truth, best) > _matched(truth, [d, after]):
                recuts[id(d)] = best
    lines = apply_recuts([list(line) for line in lines], recuts)[0]

    def join(d: Any, after: Any) -> bool:
        return _matched(truth, [d.joined]) >= _matched(truth, [d, after])

    def split(d: Any) -> Sequence[Any]:
        best = max(d.splits or [], key=lambda cut: _matched(truth, cut), default=None)
        return best if best is not None and _matched(truth, best) > _matched(truth, [d]) else (d,)

    return decide_alternatives([list(line) for line in lines], join, split)


def extractor_name(args: argparse.Namespace) -> str:
    if args.oracle:
        return "digits_jax.extraction, alternatives decided by the truth (--oracle)"
    if args.stand_in_extractor:
        return "stand-in"
    if args.model:
        return f"digits-jax read --model {args.model}" + (
            f" --tta {args.tta}" if args.tta > 1 else ""
        )
    return "digits_jax.extraction"


def difficulties(pages: int, lo: float, hi: float) -> np.ndarray:
    """Evenly spread difficulties so every bucket gets its share of pages."""
    return np.linspace(lo, hi, pages) if pages > 1 else np.array([(lo + hi) / 2])


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Generate, extract and score all pages; return the report as a dict."""
    extract = load_extractor(args.stand_in_extractor, args.model, args.tta)
    if args.stand_in_digits:
        digits, labels = stand_in_digits(np.random.default_rng(args.seed), 5000)
    else:
        digits, labels = load_mnist_test()
    if args.save_failures:
        Path(args.save_failures).mkdir(parents=True, exist_ok=True)

    results: list[PageResult] = []
    gen_s = ext_s = 0.0
    diffs = difficulties(args.pages, args.min_difficulty, args.max_difficulty)
    for i, d in enumerate(
        tqdm(diffs, desc="pages", unit="page", file=sys.stderr, disable=args.quiet)
    ):
        t0 = time.perf_counter()
        # One generator per page: a page depends only on (seed, index, difficulty).
        page = generate_page(np.random.default_rng([args.seed, i]), digits, labels, float(d))
        t1 = time.perf_counter()
        pred_lines = extract(page.image)
        if args.oracle:
            pred_lines = oracle_lines(pred_lines, [t.box for line in page.lines for t in line])
        t2 = time.perf_counter()
        gen_s, ext_s = gen_s + t1 - t0, ext_s + t2 - t1
        result = score_page(i, float(d), page, pred_lines, reads=args.model is not None)
        results.append(result)
        if args.save_failures and result.missed:
            name = f"page{i:04d}_d{d:.2f}_miss{len(result.missed)}.jpg"
            cv2.imwrite(str(Path(args.save_failures) / name), annotate(page, pred_lines, result))

    edges = np.linspace(args.min_difficulty, args.max_difficulty, args.buckets + 1)
    buckets = []
    for b in range(args.buckets):
        lo, hi = float(edges[b]), float(edges[b + 1])
        last = b == args.buckets - 1
        members = [r for r in results if lo <= r.difficulty < hi or (last and r.difficulty == hi)]
        buckets.append({"difficulty": [round(lo, 3), round(hi, 3)], **summarise(members)})
    return {
        "pages": args.pages,
        "seed": args.seed,
        "extractor": extractor_name(args),
        "digits": "stand-in" if args.stand_in_digits else "mnist-test",
        "overall": summarise(results),
        "buckets": buckets,
        "generate_s": round(gen_s, 2),
        "extract_s": round(ext_s, 2),
    }


def print_report(report: dict[str, Any]) -> None:
    """A small table, one row per difficulty bucket and one for all pages."""
    head = f"{'difficulty':>12} {'pages':>6} {'digits':>7} {'found %':>8} "
    head += f"{'spurious %':>11} {'lines ok %':>11} {'exact %':>8}"
    reads = "digit_accuracy_pct" in report["overall"]
    if reads:
        head += f" {'read %':>7}"
    print(f"extractor: {report['extractor']}, digits: {report['digits']}, seed {report['seed']}")
    print(head)
    rows = [(f"{b['difficulty'][0]:.2f}-{b['difficulty'][1]:.2f}", b) for b in report["buckets"]]
    rows.append(("all", report["overall"]))

    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}"

    for name, s in rows:
        print(
            f"{name:>12} {s['pages']:>6} {s['digits']:>7} {fmt(s['found_pct']):>8} "
            f"{fmt(s['spurious_pct']):>11} {fmt(s['line_structure_pct']):>11} "
            f"{fmt(s['exact_pages_pct']):>8}"
            + (f" {fmt(s.get('digit_accuracy_pct')):>7}" if reads else "")
        )
    print(f"time: generate {report['generate_s']:.1f} s, extract {report['extract_s']:.1f} s")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pages", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    ap.add_argument(
        "--save-failures", metavar="DIR", help="write annotated pages with missed digits"
    )
    ap.add_argument("--buckets", type=int, default=4, help="difficulty buckets in the report")
    ap.add_argument("--min-difficulty", type=float, default=0.0)
    ap.add_argument("--max-difficulty", type=float, default=1.0)
    ap.add_argument(
        "--stand-in-extractor", action="store_true", help="threshold+components baseline"
    )
    ap.add_argument("--stand-in-digits", action="store_true", help="scribbles instead of MNIST")
    ap.add_argument(
        "--model", type=Path, help="classifier workdir: measure what `digits-jax read` reports"
    )
    ap.add_argument(
        "--oracle",
        action="store_true",
        help="decide extraction's alternatives by the truth (what the best decisions reach)",
    )
    ap.add_argument("--tta", type=int, default=1, help="with --model: read's --tta N")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    if args.tta != 1 and not args.model:
        ap.error("--tta needs --model")
    if args.oracle and (args.model or args.stand_in_extractor):
        ap.error("--oracle decides by the truth: it takes neither --model nor a stand-in")
    if args.pages < 1 or args.buckets < 1:
        ap.error("--pages and --buckets must be at least 1")
    if not 0.0 <= args.min_difficulty <= args.max_difficulty <= 1.0:
        ap.error("need 0 <= --min-difficulty <= --max-difficulty <= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        report = run(args)
    except DigitsJaxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print_report(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
