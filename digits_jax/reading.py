"""Reading photos: extraction, one batched classification, and the result per page.

Many photos in one call share one loaded and compiled model; all their crops
are classified together in batches. A photo that cannot be read is reported
with its error while the others are still read.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from digits_jax import decision_rules, images, layout, pair_reader, verifier
from digits_jax.errors import DigitsJaxError
from digits_jax.extraction import Digit, extract_digits

UNSURE = "?"


@dataclass
class ReadDigit:
    digit: int
    confidence: float
    box: tuple[int, int, int, int]


@dataclass
class ReadLine:
    text: str
    numbers: list[str]
    digits: list[ReadDigit]


@dataclass
class PageResult:
    """One photo's digits by line, or the reason it could not be read."""

    path: str
    width: int = 0
    height: int = 0
    lines: list[ReadLine] = field(default_factory=list)
    error: str | None = None

    def text_lines(self) -> list[str]:
        return [line.text for line in self.lines]

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        if self.error is None:
            out.pop("error")
        return out


@dataclass
class ExtractedPage:
    """A photo and its digits before classification."""

    path: str
    image: np.ndarray
    scale: float
    lines: list[list[Digit]]

    @property
    def size(self) -> tuple[int, int]:
        h, w = self.image.shape[:2]
        return round(w * self.scale), round(h * self.scale)


def extract_page(path: str | Path) -> ExtractedPage:
    """Loads a photo (decode-capped and downscaled) and extracts its digits."""
    image, scale = images.load_image_with_scale(path)
    return ExtractedPage(str(path), image, scale, extract_digits(image, scale))


def _read(model: Any, crops: list[np.ndarray], tta: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Probabilities (N, 10) and p(two digits) (N,) or None (no detector) for 28x28 crops,
    in one pass of a model or ensemble (``.read``)."""
    if not crops:
        return np.zeros((0, 10), np.float32), None
    return model.read(np.stack(crops), tta)


def probabilities(model: Any, crops: list[np.ndarray], tta: int = 1) -> np.ndarray:
    """Probabilities (N, 10) for 28x28 crops from a model or ensemble."""
    return _read(model, crops, tta)[0]


def _line_result(digits: list[Digit], probs: np.ndarray, min_confidence: float) -> ReadLine:
    read = [
        ReadDigit(int(p.argmax()), round(float(p.max()), 6), tuple(int(v) for v in d.box))
        for d, p in zip(digits, probs, strict=True)
    ]
    chars = [
        str(r.digit) if float(p.max()) >= min_confidence else UNSURE
        for r, p in zip(read, probs, strict=True)
    ]
    groups = layout.group_numbers([d.box for d in digits])
    numbers = ["".join(chars[i] for i in group) for group in groups]
    return ReadLine("".join(chars), numbers, read)


def extract_or_error(path: str | Path) -> tuple[PageResult, ExtractedPage | None]:
    """One photo's extraction (no model needed), or its error as a result."""
    try:
        page = extract_page(path)
    except DigitsJaxError as error:
        return PageResult(str(path), error=str(error)), None
    w, h = page.size
    return PageResult(str(path), w, h), page


def extract_pages(paths: list[str | Path]) -> tuple[list[PageResult], list[ExtractedPage]]:
    """Loads and extracts each photo; a bad photo becomes an error result."""
    return collect([extract_or_error(path) for path in paths])


def collect(
    extracted: list[tuple[PageResult, ExtractedPage | None]],
) -> tuple[list[PageResult], list[ExtractedPage]]:
    """``extract_or_error`` outputs as (all results, the pages that were read)."""
    return [r for r, _ in extracted], [page for _, page in extracted if page is not None]


def decide_alternatives(
    lines: list[list[Digit]],
    join: Callable[[Digit, Digit], bool],
    split: Callable[[Digit], Sequence[Digit]],
) -> list[list[Digit]]:
    """Each line with extraction's alternatives decided, left to right: a digit and the
    next one become the digit's ``joined`` union where ``join(digit, next)`` says so;
    otherwise the digit becomes ``split(digit)``: itself, or the pieces of one of its cuts."""
    out = []
    for line in lines:
        read: list[Digit] = []
        k = 0
        while k < len(line):
            d = line[k]
            if d.joined is not None and k + 1 < len(line) and join(d, line[k + 1]):
                read.append(d.joined)
                k += 2
                continue
            read.extend(split(d))
            k += 1
        out.append(read)
    return out


def _line_size(line: list[Digit]) -> tuple[float, float]:
    """A line's median digit (width, height)."""
    return float(np.median([d.box[2] for d in line])), float(np.median([d.box[3] for d in line]))


@dataclass
class SplitCandidate:
    """A wide digit that might be two: its best cut (``decision_rules.cut_scores``), the
    pieces' probabilities (2, 10) and the split rule's inputs."""

    digit: Digit
    cut: tuple[Digit, Digit]
    piece_probs: np.ndarray
    inputs: np.ndarray


def _read_cuts(
    model: Any, cut_lists: list[Sequence[tuple[Digit, Digit]]], tta: int
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The pieces of every cut in ``cut_lists`` read in one batch and judged by the crop
    verifier in another; per list of C cuts, their probabilities (C, 2, 10), p(two
    digits) (C, 2) and the verifier's p(whole, two, part) (C, 2, 3)."""
    crops = [p.crop for cuts in cut_lists for cut in cuts for p in cut]
    probs, pairs = _read(model, crops, tta)
    calls = _verdicts(crops)
    out, at = [], 0
    for cuts in cut_lists:
        n = 2 * len(cuts)
        out.append(
            (
                probs[at : at + n].reshape(-1, 2, 10),
                pairs[at : at + n].reshape(-1, 2),
                calls[at : at + n].reshape(-1, 2, len(verifier.CLASSES)),
            )
        )
        at += n
    return out


def _pair_odds(crops: list[np.ndarray]) -> np.ndarray:
    """The two-digit reader's log odds of a pair against one digit (N,) of 28x28 crops."""
    return pair_reader.pair_odds(np.reshape(crops, (-1, 28, 28)))


def _verdicts(crops: list[np.ndarray]) -> np.ndarray:
    """The crop verifier's p(whole, two, part) (N, 3) of 28x28 crops."""
    return verifier.probabilities(np.reshape(crops, (-1, 28, 28)))


def split_candidates(
    model: Any,
    lines: list[list[Digit]],
    probs_of: dict[int, np.ndarray],
    pair_of: dict[int, float],
    tta: int = 1,
) -> list[SplitCandidate]:
    """The wide digits of ``lines`` the detector gives at least ``decision_rules.MIN_PAIR``
    or the two-digit reader ``decision_rules.MIN_ODDS`` (``probs_of``, ``pair_of``: the
    first pass's outputs by ``id``), their cuts' pieces read and verified in one batch
    each, the verifier's calls on the digits in another."""
    offered = [(d, _line_size(line)) for line in lines for d in line if d.splits is not None]
    all_odds = _pair_odds([d.crop for d, _ in offered])
    wide, odds = [], []
    for (d, size), d_odds in zip(offered, all_odds, strict=True):
        gate = pair_of[id(d)] >= decision_rules.MIN_PAIR or d_odds >= decision_rules.MIN_ODDS
        if gate and d.splits:  # (the cuts are worked out only here)
            wide.append((d, size))
            odds.append(d_odds)
    readings = _read_cuts(model, [d.splits for d, _ in wide], tta)
    whole_calls = _verdicts([d.crop for d, _ in wide])
    out = []
    for (d, (line_width, line_height)), (pieces, piece_pairs, calls), whole, whole_odds in zip(
        wide, readings, whole_calls, odds, strict=True
    ):
        heights = _heights(d.splits, line_height)
        scores = decision_rules.cut_scores(pieces, piece_pairs, heights, calls[..., 0])
        best = int(np.argmax(scores))
        _, _, w, h = d.box
        inputs = decision_rules.split_inputs(
            pair_of[id(d)],
            probs_of[id(d)],
            pieces[best],
            w / line_width,
            w / h,
            heights[best],
            np.concatenate([whole[None], calls[best]]),
            float(whole_odds),
        )
        out.append(SplitCandidate(d, d.splits[best], pieces[best], inputs))
    return out


@dataclass
class RecutCandidate:
    """Two neighbours that are the pieces of a hard cut (``Digit.recuts``): the score
    (``decision_rules.cut_scores``) of that cut and of the best re-cut of their union,
    that re-cut's pieces and their probabilities (2, 10) and p(two digits) (2,)."""

    digit: Digit
    score: float
    recut_score: float
    cut: tuple[Digit, Digit]
    piece_probs: np.ndarray
    piece_pairs: np.ndarray


def _heights(cuts: Sequence[Sequence[Digit]], line_height: float) -> np.ndarray:
    """Each cut's shorter piece's height over its line's median height."""
    return np.array([min(p.box[3] for p in cut) for cut in cuts]) / line_height


def recut_candidates(
    model: Any,
    lines: list[list[Digit]],
    probs_of: dict[int, np.ndarray],
    pair_of: dict[int, float],
    tta: int = 1,
) -> list[RecutCandidate]:
    """The hard-cut pairs of ``lines`` (``probs_of``, ``pair_of``: the first pass's
    outputs by ``id``), their unions' re-cuts read in one batch and scored like the
    cuts of a wide digit."""
    found = [
        (d, after, _line_size(line)[1])
        for line in lines
        for d, after in itertools.pairwise(line)
        if d.recuts
    ]
    out = []
    readings = _read_cuts(model, [d.recuts for d, _, _ in found], tta)
    now_calls = _verdicts([x.crop for d, after, _ in found for x in (d, after)])
    for (d, after, line_height), (pieces, piece_pairs, calls), now_call in zip(
        found, readings, now_calls.reshape(-1, 2, len(verifier.CLASSES)), strict=True
    ):
        scores = decision_rules.cut_scores(
            pieces, piece_pairs, _heights(d.recuts, line_height), calls[..., 0]
        )
        now = decision_rules.cut_scores(
            np.stack([probs_of[id(d)], probs_of[id(after)]])[None],
            np.array([[pair_of[id(d)], pair_of[id(after)]]]),
            _heights([(d, after)], line_height),
            now_call[None, :, 0],
        )
        best = int(np.argmax(scores))
        out.append(
            RecutCandidate(
                d,
                float(now[0]),
                float(scores[best]),
                d.recuts[best],
                pieces[best],
                piece_pairs[best],
            )
        )
    return out


def apply_recuts(
    lines: list[list[Digit]], cuts: dict[int, tuple[Digit, Digit]]
) -> tuple[list[list[Digit]], dict[int, int]]:
    """``lines`` with each pair of neighbours whose left one's ``id`` is in ``cuts``
    replaced by that re-cut's pieces, left to right (a pair whose left one was already
    replaced keeps its cut). The re-cut's left piece is a copy holding the pair's union
    (``Digit.joined``), and the digit before the pair a copy without its union with the
    pair's left one; returned too: {id(copy): id(original)}."""
    out, copies = [], {}
    for line in lines:
        new: list[Digit] = []
        k = 0
        while k < len(line):
            cut = cuts.get(id(line[k]))
            if cut is None or k + 1 >= len(line):
                new.append(line[k])
                k += 1
                continue
            if new and new[-1].joined is not None:
                copy = dataclasses.replace(new[-1], joined=None)
                copies[id(copy)], new[-1] = id(new[-1]), copy
            # The pair may still be one digit that the hard cut split: the re-cut's pieces
            # keep the pair's union.
            left = dataclasses.replace(cut[0], joined=line[k].joined)
            copies[id(left)] = id(cut[0])
            new.extend((left, cut[1]))
            k += 2
        out.append(new)
    return out, copies


@dataclass
class JoinCandidate:
    """A digit whose union with the next one on its line might be one digit, and the
    join rule's inputs."""

    digit: Digit
    after: Digit
    inputs: np.ndarray


def join_candidates(
    lines: list[list[Digit]], probs_of: dict[int, np.ndarray], pair_of: dict[int, float]
) -> list[JoinCandidate]:
    """The digits of ``lines`` that have a union with the next one (``Digit.joined``),
    with the first pass's outputs (by ``id``) of the union and the two."""
    found = [
        (d, after, _line_size(line))
        for line in lines
        if len(line) > 1
        for d, after in itertools.pairwise(line)
        if d.joined is not None
    ]
    odds = _pair_odds([d.joined.crop for d, _, _ in found])
    out = []
    for (d, after, size), union_odds in zip(found, odds, strict=True):
        three = (d.joined, d, after)
        inputs = decision_rules.join_inputs(
            [pair_of[id(x)] for x in three],
            [probs_of[id(x)] for x in three],
            [x.box for x in three],
            size,
            float(union_odds),
        )
        out.append(JoinCandidate(d, after, inputs))
    return out


def first_pass(
    model: Any, lines: list[list[Digit]], tta: int = 1
) -> tuple[dict[int, np.ndarray], dict[int, float] | None]:
    """The probabilities (10,) and p(two digits) (None: no detector) of the digits of
    ``lines`` and of their unions with a neighbour, by ``id``, read in one pass."""
    flat = [d for line in lines for d in line]
    first = flat + [d.joined for d in flat if d.joined is not None]
    probs, pair = _read(model, [d.crop for d in first], tta)
    probs_of = dict(zip(map(id, first), probs, strict=True))
    return probs_of, None if pair is None else dict(zip(map(id, first), pair, strict=True))


@dataclass
class Decision:
    """``decide``'s outcome: the lines as decided, the probabilities (10,) of their
    digits by ``id``, and the split and join candidates judged (None: no detector)."""

    lines: list[list[Digit]]
    probs_of: dict[int, np.ndarray]
    splits: list[SplitCandidate] | None
    joins: list[JoinCandidate] | None


def decide(lines: list[list[Digit]], model: Any, tta: int = 1) -> Decision:
    """The lines with extraction's alternatives decided (the digits and their unions
    with a neighbour read in one pass, the re-cuts of hard-cut pairs in another, the
    pieces of the wide ones' cuts in a third).

    A hard cut's two pieces become the best re-cut of their union where its score
    (``decision_rules.cut_scores``) beats theirs by ``decision_rules.RECUT_MARGIN``;
    then two neighbours become one digit where ``decision_rules.JOIN`` says so, and a
    wide digit becomes the two pieces of its best cut where ``decision_rules.SPLIT``
    does. A model without a pair detector leaves the lines as extracted."""
    probs_of, pair_of = first_pass(model, lines, tta)
    if pair_of is None:
        return Decision(lines, probs_of, None, None)
    recuts = [
        c
        for c in recut_candidates(model, lines, probs_of, pair_of, tta)
        if c.recut_score > c.score + decision_rules.RECUT_MARGIN
    ]
    for c in recuts:
        probs_of.update(zip(map(id, c.cut), c.piece_probs, strict=True))
        pair_of.update(zip(map(id, c.cut), map(float, c.piece_pairs), strict=True))
    lines, copies = apply_recuts(lines, {id(c.digit): c.cut for c in recuts})
    for new, old in copies.items():
        probs_of[new], pair_of[new] = probs_of[old], pair_of[old]
    splits = split_candidates(model, lines, probs_of, pair_of, tta)
    cuts: dict[int, tuple[Digit, Digit]] = {}
    for c in _taken(splits, decision_rules.SPLIT):
        cuts[id(c.digit)] = c.cut
        probs_of.update(zip(map(id, c.cut), c.piece_probs, strict=True))
    joins = join_candidates(lines, probs_of, pair_of)
    joined = {id(c.digit) for c in _taken(joins, decision_rules.JOIN)}
    out = decide_alternatives(
        lines, lambda d, after: id(d) in joined, lambda d: cuts.get(id(d), (d,))
    )
    return Decision(out, probs_of, splits, joins)


@dataclass
class DropCandidate:
    """A decided digit much shorter than its line's, and the drop rule's inputs."""

    digit: Digit
    inputs: np.ndarray


def drop_candidates(
    lines: list[list[Digit]], probs_of: dict[int, np.ndarray]
) -> list[DropCandidate]:
    """The digits of decided ``lines`` shorter than ``decision_rules.SHORT`` of their
    line's median height (lines of two or more), with their probabilities (by ``id``)."""
    out = []
    for line in (line for line in lines if len(line) > 1):
        size = _line_size(line)
        for d in line:
            if d.box[3] < decision_rules.SHORT * size[1]:
                inputs = decision_rules.drop_inputs(probs_of[id(d)], d.box, size)
                out.append(DropCandidate(d, inputs))
    return out


def resolve_alternatives(
    lines: list[list[Digit]], model: Any, tta: int = 1
) -> tuple[list[list[Digit]], np.ndarray]:
    """The lines as read: extraction's alternatives decided (``decide``), then, with a
    pair detector, the short boxes ``decision_rules.DROP`` takes dropped; and the
    probabilities (N, 10) of their digits in order."""
    decision = decide(lines, model, tta)
    out, probs_of = decision.lines, decision.probs_of
    if decision.splits is not None:
        dropped = {id(c.digit) for c in _taken(drop_candidates(out, probs_of), decision_rules.DROP)}
        out = [[d for d in line if id(d) not in dropped] for line in out]
    order = [probs_of[id(d)] for line in out for d in line]
    return out, np.stack(order) if order else np.zeros((0, 10), np.float32)


def _taken(candidates: list, rule: decision_rules.Rule) -> list:
    """The candidates whose alternative ``rule`` takes."""
    take = rule.take(np.array([c.inputs for c in candidates]))
    return [c for c, yes in zip(candidates, take, strict=True) if yes]


def classify_pages(
    results: list[PageResult],
    pages: list[ExtractedPage],
    model: Any,
    min_confidence: float = 0.0,
    tta: int = 1,
) -> list[PageResult]:
    """Fills the results of ``extract_pages`` with the model's reading, all crops in a batch.

    Extraction's alternatives are decided first (``resolve_alternatives``); each page's
    ``lines`` then become the digits as read, so saved crops match the result."""
    flat, probs = resolve_alternatives([line for page in pages for line in page.lines], model, tta)
    ok = iter(r for r in results if r.error is None)
    lines_left, offset = iter(flat), 0
    for page in pages:
        result = next(ok)
        page.lines = [next(lines_left) for _ in page.lines]
        for line in page.lines:
            result.lines.append(
                _line_result(line, probs[offset : offset + len(line)], min_confidence)
            )
            offset += len(line)
    return results


def read_pages(
    paths: list[str | Path], model: Any, min_confidence: float = 0.0, tta: int = 1
) -> tuple[list[PageResult], list[ExtractedPage]]:
    """Reads each photo; returns results (errors included) and the extracted pages."""
    results, pages = extract_pages(paths)
    return classify_pages(results, pages, model, min_confidence, tta), pages
