"""Find handwritten digits in a photo and return them as MNIST-format crops in reading order.

Each step is chosen to hold on photos never seen before rather than tuned to a few:

1. ink map: divide the photo by the paper's own brightness, estimated by a closing
   wider than the pen strokes (widened for close-ups with fat strokes), so gradients,
   tinted paper and cast shadows (edges included) become uniform; light-on-dark pages
   (chalkboards, inverted photos) are detected and inverted first; a desk far darker
   than the paper is ignored here, and lone marks on any desk beyond the page's sharp
   edge are dropped after step 4 (``page_region``);
2. low-threshold mask; ruled lines, margins and grids (long thin runs at tilts up to
   6 degrees) removed from it, except where a digit stroke crosses or lies on them;
3. hysteresis: keep the parts of that mask that hold real ink (above Otsu's level and
   the paper's noise floor), so faint stroke ends stay attached but texture does not;
   on ruled or squared paper, strokes are followed down to the floor of the paper
   between the printed lines (which would otherwise raise it above faint strokes);
4. connected components filtered by size relative to the typical digit height (taken
   from components inside the frame, so the page's edge against the desk cannot set
   it), by shape, stroke width and touching the border; per line, fragments of one
   digit are merged (pieces stacked one above the other, pieces too short to be a
   digit) and touching digits split: by the cheapest straight or slanted cut that
   crosses a single thin stroke of the half-strength ink and leaves two pieces that
   each look like a digit (or a straight 1), else, for blobs several digits wide, at
   the weakest single-stroke columns;
5. alternatives that ink alone cannot decide, for a recogniser (``reading``): each blob
   at least 0.75 as wide as tall also as two pieces (at each slant, the least-ink cut
   and cuts at fixed shares of the ink), and close neighbours also as one digit;
6. reading order (layout.group_lines) and MNIST normalisation (mnist_format.to_mnist).
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from digits_jax.layout import group_lines
from digits_jax.mnist_format import stroke_width, to_mnist
from digits_jax.page_region import desk_mask

# Reduced copy used for background estimation and polarity (long side, px).
_SMALL_SIDE = 400
# Background closing kernel as a fraction of the image's long side: wider than any pen
# stroke, so strokes vanish from the background estimate.
_BG_KERNEL_FRAC = 1 / 25
# A ruled line is a run of ink at least this fraction of the page width (or height).
_RULE_LEN_FRAC = 1 / 8
# Background darker than this fraction of the page's lit paper is not paper (a desk).
_MIN_PAPER_LIGHT = 0.25
# Hysteresis levels as fractions of Otsu's threshold: seeds must be clearly ink, and a
# stroke is followed down to its faint, thin parts (a 5's bar, the tail of a 9).
_SEED_FRAC = 1.0
_GROW_FRAC = 0.5
# A blob is tried for splitting into touching digits when it is this much wider than tall
# and than the line's typical digit (a cut must still cross a single stroke).
_SPLIT_ASPECT = 1.15
_SPLIT_WIDTH = 1.6
# Marks beyond the page's edge are kept when they line up into a row this long.
_DESK_ROW = 3
# A solid part at most this many typical digit heights across is a filled-in digit.
_SOLID_DIGIT = 1.2
# A blob taller than this many of the page's typical digit heights does not set its line's.
_TALL_BLOB = 2.0
_RULE_ANGLES_DEG = (-6.0, -4.0, -2.0, 0.0, 2.0, 4.0, 6.0)


@dataclass
class Digit:
    """One digit: where it is in the original photo and how the classifier sees it."""

    box: tuple[int, int, int, int]  # x, y, w, h in the original photo's pixels
    crop: np.ndarray = field(repr=False)  # (28, 28) float32 in [0, 1], white on black
    # A wide digit's other readings as two digits side by side (left, right), one per cut
    # tried, for a recogniser to accept or reject: ink alone cannot tell two overlapping
    # digits from one wide one.
    # None: not wide enough to be offered; a sequence (maybe empty): the cuts found.
    splits: Sequence[tuple[Digit, Digit]] | None = field(default=None, repr=False)
    # This digit and the next one on its line read as one digit (two pieces of one cut
    # apart, or a fragment left beside its digit), when they are close enough to be one.
    joined: Digit | None = field(default=None, repr=False)
    # Where this digit and the next one are the two pieces of a hard cut between touching
    # digits (``_cut_pieces``): their union cut elsewhere, one reading per cut tried (the
    # hard cut can be wrong where two digits interpenetrate). None: not such a pair.
    recuts: Sequence[tuple[Digit, Digit]] | None = field(default=None, repr=False)


class _Splits(Sequence[tuple[Digit, Digit]]):
    """A wide digit's two-piece readings, worked out when first asked for: most never are
    (only where the pair detector or the two-digit reader gives the digit some chance of
    being two, as ``reading.split_candidates`` asks), and a page can have dozens."""

    def __init__(
        self, blob: _Blob, ink8: np.ndarray, scale: float = 1.0, at: tuple[int, int] = (0, 0)
    ):
        # The blob's own ink, so the page's ink map need not be kept (``at``: where
        # ``ink8``'s corner lies in the working image).
        self._blob = _Blob(0, 0, blob.w, blob.h, blob.mask)
        self._ink8 = ink8[blob.y : blob.y + blob.h, blob.x : blob.x + blob.w].copy()
        self._origin, self._scale = (blob.x + at[0], blob.y + at[1]), scale
        self._made: list[tuple[Digit, Digit]] | None = None

    def scaled(self, scale: float) -> _Splits:
        """The same readings with boxes in a photo ``scale`` times larger."""
        out = copy.copy(self)
        out._scale, out._made = scale, None
        return out

    def _readings(self) -> list[tuple[Digit, Digit]]:
        if self._made is None:
            x0, y0 = self._origin
            made = []
            for pieces in _two_pieces(self._blob, self._ink8):
                moved = []
                for p in pieces:
                    s = _soft(p, self._ink8)
                    # A piece may itself be two digits (three touching, cut once): it
                    # gets two-piece readings of its own, as a wide blob does.
                    cuts = _offered(p, self._ink8, at=(x0, y0))
                    moved.append(_Blob(s.x + x0, s.y + y0, s.w, s.h, s.mask, cuts))
                made.append((_digit(moved[0], self._scale), _digit(moved[1], self._scale)))
            self._made = made
        return self._made

    def __len__(self) -> int:
        return len(self._readings())

    def __getitem__(self, i: int) -> tuple[Digit, Digit]:  # type: ignore[override]
        return self._readings()[i]


def _offered(blob: _Blob, ink8: np.ndarray, at: tuple[int, int] = (0, 0)) -> _Splits | None:
    """The blob's two-piece readings where it is wide enough to be two digits
    (``_ALT_ASPECT``), else None."""
    return _Splits(blob, ink8, at=at) if blob.w >= _ALT_ASPECT * blob.h else None


@dataclass
class _Blob:
    """A candidate digit in working-image coordinates: its box and its own ink pixels."""

    x: int
    y: int
    w: int
    h: int
    mask: np.ndarray  # bool (h, w); after _soft, float ink in [0, 1]
    splits: _Splits | None = None  # a wide blob's two-piece readings (worked out lazily)
    joined: _Blob | None = None  # this blob and the next one of its line as one
    recuts: _Splits | None = None  # this blob and the next, its hard cut's pieces, re-cut

    @property
    def box(self) -> tuple[int, int, int, int]:
        return self.x, self.y, self.w, self.h


# --------------------------------------------------------------------------- ink map


def _grey8(image: np.ndarray) -> np.ndarray:
    """Any image (grey/BGR/BGRA, uint8 or float in [0, 1] or [0, 255]) -> uint8 grey."""
    img = np.asarray(image)
    if img.dtype != np.uint8:
        peak = float(np.nanmax(img, initial=0.0)) if img.size else 0.0
        img = np.nan_to_num(img.astype(np.float32))
        if peak <= 1.0:
            img = img * 255.0
        elif peak > 255.0 and np.issubdtype(np.asarray(image).dtype, np.integer):
            img = img / 257.0  # 16-bit
        img = np.clip(img, 0, 255).astype(np.uint8)
    if img.ndim == 3:
        if img.shape[2] == 4:
            img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
        img = img[:, :, 0] if img.shape[2] == 1 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    return np.ascontiguousarray(img)


def _odd(n: float) -> int:
    return max(3, int(n) | 1)


def light_on_dark(image: np.ndarray) -> bool:
    """True for bright ink on a dark page (chalkboard, inverted photo).

    The local median is the page whatever its polarity; ink is the minority that
    departs from it. Compare how much departs on the bright and on the dark side,
    leaving out what is not ink: where the median's window straddles the edge of the
    page (a corner, the desk beside it), the paper itself departs on the bright side,
    which on a page of faint digits outweighed the ink and inverted the page."""
    small8 = _reduce(_grey8(image))
    small = small8.astype(np.float32) / 255.0
    k = _odd(max(small.shape) / 8)
    page = cv2.medianBlur(small8, k)
    resid = small - page.astype(np.float32) / 255.0
    noise = 1.4826 * float(np.median(np.abs(resid - np.median(resid))))
    t = max(3.0 * noise, 0.04)
    # Thin ink does not move the median; the edge of the page does, sharply, along a
    # line that runs to the photo's border.
    step = cv2.morphologyEx(page, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 25
    _, labels, stats, _ = cv2.connectedComponentsWithStats(step.astype(np.uint8), connectivity=8)
    edge = _touches_frame(stats, small.shape)
    edge[0] = False
    broad_size = _odd(k / 4)
    broad = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (broad_size,) * 2)
    page_edge = cv2.dilate(edge[labels].astype(np.uint8), broad)

    def ink_like(excess: np.ndarray) -> float:
        """The excess in thin marks: not near a page edge, not in a broad patch (a corner
        of paper beside the desk) nor at the tips of one."""
        keep = (_near_broad(excess > 0, broad_size) | page_edge) == 0
        return float(excess[keep].sum())

    dark = ink_like(np.clip(-resid - t, 0, None))
    bright = ink_like(np.clip(resid - t, 0, None))
    return bright > 1.5 * dark


def _near_broad(mask: np.ndarray, diameter: int) -> np.ndarray:
    """uint8 mask of the parts of ``mask`` a disk of ``diameter`` fits inside, grown by the
    disk again: broad patches together with their rims and thin tips.

    That is an opening followed by a dilation; done with two distance transforms it
    costs the same for any disk (a morphological disk of 60 px took 0.1-0.2 s a page)."""
    r = (diameter - 1) / 2
    core = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5) > r
    if not core.any():
        return np.zeros(mask.shape, np.uint8)
    reach = cv2.distanceTransform((~core).astype(np.uint8), cv2.DIST_L2, 5)
    return (reach <= 2 * r).astype(np.uint8)


def _reduce(grey: np.ndarray) -> np.ndarray:
    s = _SMALL_SIDE / max(grey.shape)
    if s >= 1:
        return grey
    size = (max(1, round(grey.shape[1] * s)), max(1, round(grey.shape[0] * s)))
    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA)


def _stroke_width_hint(grey: np.ndarray) -> float:
    """Rough pen stroke width (full-resolution px), measured on a reduced copy against a
    very wide background estimate, so that even the fat strokes of a close-up photo of
    one digit are seen as ink. Only stroke-like components away from the border count
    (a table edge touches it, a shadow is solid or weak; ``_pen_width``)."""
    small = _reduce(grey).astype(np.float32) / 255.0
    factor = max(grey.shape) / max(small.shape)
    k = _odd(max(small.shape) / 4)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
    paper = cv2.morphologyEx(small, cv2.MORPH_CLOSE, kernel, borderType=cv2.BORDER_REPLICATE)
    ink8 = (np.clip(1.0 - small / np.maximum(paper, 1e-3), 0, 1) * 255).astype(np.uint8)
    otsu, mask = cv2.threshold(ink8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    if otsu < 64:
        mask = (ink8 > 64).astype(np.uint8) * 255
    # A soft shadow is one wide, weak component here, holding the digits under it: only
    # components whose ink is on average half as strong as the strongest count.
    n, labels = cv2.connectedComponents(mask, connectivity=8)
    if n > 1:
        on = labels > 0
        mean = np.bincount(labels[on], weights=ink8[on], minlength=n) / np.maximum(
            np.bincount(labels[on], minlength=n), 1
        )
        strong = mean >= 0.5 * float(np.percentile(ink8[on], 99))
        strong[0] = False
        mask = strong[labels]
    return _pen_width(mask > 0, min_area=30, max_fill=0.8) * factor


def _touches_frame(stats: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Which components (OpenCV's stats table) touch the border of an image of ``shape``."""
    x, y, w, h = (stats[:, i] for i in range(4))
    return (x <= 0) | (y <= 0) | (x + w >= shape[1]) | (y + h >= shape[0])


def _pen_width(mask: np.ndarray, min_area: int, max_fill: float) -> float:
    """The pen's stroke width: the median of the components' widths (2 x area / outline),
    each counted by its outline, so that strokes, with much outline for their ink, set
    it rather than a shadow or a solid patch, with much ink for little outline. Only
    components clear of the frame count (the desk beyond a page's edge is cut by it),
    of at least ``min_area`` px and filling at most ``max_fill`` of their box; 0 when
    none does."""
    m = mask.astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    w, h, area = (stats[:, i] for i in range(2, 5))
    ok = ~_touches_frame(stats, m.shape) & (area >= min_area)
    ok &= area <= max_fill * w * h
    ok[0] = False
    if not ok.any():
        return 0.0
    contours, _ = cv2.findContours(m, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    outline = np.zeros(n)
    for c in contours:  # every contour runs over its component's own pixels
        px, py = c[0, 0]
        outline[labels[py, px]] += cv2.arcLength(c, True)
    idx = np.flatnonzero(ok & (outline > 0))
    if idx.size == 0:
        return 0.0
    widths = 2.0 * area[idx] / outline[idx]
    order = np.argsort(widths)
    cum = np.cumsum(outline[idx][order])
    return float(widths[order][np.searchsorted(cum, cum[-1] / 2)])


def _page_grey(image: np.ndarray, light_ink: bool | None = None) -> np.ndarray:
    """uint8 grey with the paper bright; the polarity is detected unless ``light_ink``
    says it."""
    grey = _grey8(image)
    if light_on_dark(grey) if light_ink is None else light_ink:
        grey = 255 - grey
    return grey


def _ink8(grey: np.ndarray) -> np.ndarray:
    """Ink strength as uint8 (0 = paper, 255 = black ink on white paper) of a
    ``_page_grey`` image."""
    # Light smoothing first: sensor noise would otherwise bias the closing upwards and
    # break thin strokes into specks. One pixel of blur per 1000 px keeps thin pen lines.
    sigma = max(0.8, max(grey.shape) / 1000)
    grey = cv2.GaussianBlur(grey, (0, 0), sigma)
    # Closing removes dark strokes narrower than the kernel; at full resolution it keeps
    # the sharp edge of a cast shadow exactly where it is (a blurred or upsampled estimate
    # would turn the edge into a band of false ink). A square kernel costs a few ms.
    # The kernel must be wider than the strokes: a close-up of a digit needs a wider one.
    long_side = max(grey.shape)
    width = max(long_side * _BG_KERNEL_FRAC, min(3.0 * _stroke_width_hint(grey), long_side / 3))
    k = _odd(width)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
    paper = cv2.morphologyEx(grey, cv2.MORPH_CLOSE, kernel, borderType=cv2.BORDER_REPLICATE)
    ink = 255 - cv2.divide(grey, paper, scale=255.0)
    # Far darker than the page's paper: the desk around the page or the dark: not paper.
    lit = float(np.percentile(paper[::4, ::4], 95))
    ink[paper < max(16.0, _MIN_PAPER_LIGHT * lit)] = 0
    return ink


def ink_map(image: np.ndarray) -> np.ndarray:
    """Ink strength in [0, 1] (0 = paper), independent of illumination and polarity."""
    return _ink8(_page_grey(image)).astype(np.float32) / 255.0


def _paper_noise(ink8: np.ndarray, skip: np.ndarray | None = None) -> tuple[float, float]:
    """The median ink of the page (its paper) and the spread around it (a robust standard
    deviation from the median absolute deviation), sampled on a grid of about 300x300
    pixels, without ``skip``."""
    step = (max(1, ink8.shape[0] // 300), max(1, ink8.shape[1] // 300))
    sample = ink8[:: step[0], :: step[1]]
    if skip is not None and not skip[:: step[0], :: step[1]].all():
        sample = sample[~skip[:: step[0], :: step[1]]]
    med = float(np.median(sample))
    return med, 1.4826 * float(np.median(np.abs(sample.astype(np.float32) - med)))


def _levels(ink8: np.ndarray, skip: np.ndarray | None = None) -> tuple[float, float]:
    """(seed, grow) ink levels: above Otsu's threshold and the paper's noise floor, the
    floor measured on the paper without ``skip`` (printed lines, which are not noise).
    Where the floor sets the seed level (grainy paper), strokes are grown from a lower
    one, nearer the paper's grain: specks there hold no seed and are dropped, while faint
    strokes joined to dark ones are followed."""
    otsu, _ = cv2.threshold(ink8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    med, mad = _paper_noise(ink8, skip)
    floor = med + 6.0 * mad + 10.0
    seed = max(_SEED_FRAC * otsu, floor, 25.0)
    if floor >= seed:
        return seed, max(_GROW_FRAC * otsu, med + 4.0 * mad + 5.0)
    return seed, max(_GROW_FRAC * otsu, floor)


def _grow_level(ink8: np.ndarray, seed: float, grow: float) -> float:
    """The level strokes are followed down to, lowered on ruled or squared paper whose
    printed lines raised the noise floor (maybe above faint strokes): there the floor is
    measured on the paper between the lines. Not where the new level cuts through the
    lines while they are nearly as dark as the seeds: the rule remover would see pieces
    of a grid, not lines, and hysteresis would keep them."""
    if grow <= 0.5 * seed:
        return grow
    otsu, _ = cv2.threshold(ink8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    horiz, vert = _rule_masks(ink8 > otsu)  # on squared paper Otsu splits paper from grid
    lines = horiz | vert
    if not lines.any():
        return grow
    near = cv2.dilate(lines.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    lowered = max(0.5 * seed, _levels(ink8, near)[1])
    lo, hi = np.percentile(ink8[lines], [10, 90])
    return min(grow, lowered) if hi < lowered or lo > lowered or 1.5 * hi < seed else grow


# A printed grid lighter than the digits (its 90th percentile of ink at most this fraction
# of Otsu's level, which then splits the digits from paper and grid together) is measured
# apart from the paper's noise. Its lines take a large share of the page, and counted as
# noise they raised the floor, and the seed and grow levels, above faint digits' strokes.
_FAINT_GRID = 0.6
# The grow level stays this far above the grid's 90th percentile of ink.
_GRID_MARGIN = 1.25


def _page_levels(ink8: np.ndarray) -> tuple[float, float]:
    """(seed, grow) for the page: ``_levels``, with a faint printed grid or ruling left
    out of the noise floor where that floor (not Otsu's level) set a level."""
    seed, grow = _levels(ink8)
    otsu, _ = cv2.threshold(ink8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    if seed <= otsu and grow <= _GROW_FRAC * otsu:
        return seed, grow
    paper = ink8[ink8 < otsu]
    if paper.size == 0:
        return seed, grow
    # The level splitting the paper from the printed lines, both below the digits.
    split, _ = cv2.threshold(paper.reshape(1, -1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    horiz, vert = _rule_masks(ink8 > split)
    lines = horiz | vert
    if not lines.any():
        return seed, grow
    grid = float(np.percentile(ink8[lines], 90))
    if grid > _FAINT_GRID * otsu:
        return seed, grow
    near = cv2.dilate(lines.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    seed2, grow2 = _levels(ink8, near)
    grow2 = max(grow2, _GRID_MARGIN * grid)
    return min(seed, max(seed2, grow2)), min(grow, grow2)


def _seeded_parts(
    weak: np.ndarray, ink8: np.ndarray, seed: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The connected parts of ``weak``: their labels, their stats (OpenCV's table, row 0
    the background) and whether each holds a seed pixel (the background never does)."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(weak.astype(np.uint8), connectivity=8)
    strong = np.zeros(n, bool)
    strong[np.unique(labels[(ink8 > seed) & weak])] = True
    strong[0] = False
    return labels, stats, strong


def _hysteresis(weak: np.ndarray, ink8: np.ndarray, seed: float) -> np.ndarray:
    """Keep the connected parts of ``weak`` that contain at least one seed pixel."""
    labels, _, strong = _seeded_parts(weak, ink8, seed)
    return strong[labels]


# A digit written lighter than the page's others (less pressure, another pen) may hold no
# seed pixel. Such ink is kept when it is digit-sized, drawn with a pen between these
# fractions of the page's (a lighter line is a thinner one; printed margins and grids are
# hairlines, a shadow's or the desk's texture is broad) and its strokes reach this multiple
# of the grow level: on generated pages of seeds 0-2, faint digits reached 1.5-1.76x, the
# mottled texture of shadows and desks that passed the other tests 1.2-1.42x.
_FAINT_PEAK = 1.45
_FAINT_HEIGHT = (0.5, 1.5)
_FAINT_PEN = (0.4, 0.9)


def _seeded_digits(
    labels: np.ndarray, stats: np.ndarray, strong: np.ndarray
) -> tuple[np.ndarray, float | None]:
    """Which parts (``_seeded_parts``) are the page's digits, and their typical height:
    the seeded parts clear of the frame. The desk beyond the page's edges, cut by the
    frame, must not count: with it the height was often unknown (page-sized parts holding
    most of the ink) and the pen far too broad."""
    digits = strong & ~_touches_frame(stats, labels.shape)
    return digits, _typical_height_of(stats[digits], labels.shape)


def _faint_digits(
    labels: np.ndarray,
    stats: np.ndarray,
    strong: np.ndarray,
    ink8: np.ndarray,
    grow: float,
    peak: float | None = None,
) -> np.ndarray:
    """The seedless parts (``_seeded_parts``) that are digits in their own right: as tall
    as the page's digits (those of the seeded parts) and no wider than twice that, off the
    photo's border, drawn with a pen near the page's, their strokes (90th percentile of
    their ink) clearly above the grow level: ``peak`` times it (``_FAINT_PEAK`` unless
    given)."""
    out = np.zeros(labels.shape, bool)
    digits, typical = _seeded_digits(labels, stats, strong)
    if typical is None:
        return out
    x, y, w, h = (stats[:, i] for i in range(4))
    lo, hi = _FAINT_HEIGHT
    ok = ~strong & (h >= lo * typical) & (h <= hi * typical) & (w <= 2 * typical)
    ok &= ~_touches_frame(stats, labels.shape)
    ok[0] = False
    pen = None
    for i in np.flatnonzero(ok):
        box = np.s_[y[i] : y[i] + h[i], x[i] : x[i] + w[i]]
        part = labels[box] == i
        if np.percentile(ink8[box][part], 90) < (peak or _FAINT_PEAK) * grow:
            continue
        if pen is None:
            pen = max(stroke_width(digits[labels]), 1e-6)
        if _FAINT_PEN[0] <= stroke_width(part) / pen <= _FAINT_PEN[1]:
            out[box] |= part
    return out


# On clean paper a whole digit may be written so lightly that little of it passes the grow
# level (half Otsu's, set by the darkest digits) while it stands far above the paper's
# noise: such digits are looked for again down to this fraction of the grow level, or
# the noise floor if higher, by the tests of ``_faint_digits`` but for a higher peak.
# So near the paper's noise a shadow's soft edge or the paper's texture can make a
# digit-sized part; on generated pages (seed 10) those peaked at 1.45-1.5x the level,
# the light digits at 2.2-2.9x.
_LIGHTER_LEVEL = 0.5
_LIGHTER_PEAK = 2.0


def _lighter_digits(mask: np.ndarray, ink8: np.ndarray, grow: float) -> np.ndarray:
    """Digit-sized ink below the grow level, apart from every part already in ``mask``."""
    med, mad = _paper_noise(ink8)
    low = max(_LIGHTER_LEVEL * grow, med + 6.0 * mad + 10.0)
    if low >= 0.8 * grow:
        return np.zeros(mask.shape, bool)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(
        (ink8 > low).astype(np.uint8), connectivity=8
    )
    taken = np.zeros(n, bool)
    taken[np.unique(labels[mask])] = True
    taken[0] = False
    return _faint_digits(labels, stats, taken, ink8, low, _LIGHTER_PEAK)


# A stroke may also break where the pen skipped (a 7's stem below its bar), leaving a
# piece without a seed beside the seeded rest. Such a piece is kept when it comes within
# this many pen widths of a seeded digit, is at least this fraction of the typical digit
# height long, and its ink reaches this multiple of the grow level (lower than a whole
# faint digit's: lying beside a digit's ink, it is not the page's texture).
_BROKEN_GAP = 1.2
_BROKEN_LENGTH = 0.25
_BROKEN_PEAK = 1.25


def _broken_strokes(
    labels: np.ndarray, stats: np.ndarray, strong: np.ndarray, ink8: np.ndarray, grow: float
) -> np.ndarray:
    """The seedless parts that are pieces of a seeded digit's strokes: no bigger than a
    digit, off the photo's border, near a seeded digit, drawn with a pen like the page's."""
    out = np.zeros(labels.shape, bool)
    digits, typical = _seeded_digits(labels, stats, strong)
    if typical is None:
        return out
    x, y, w, h = (stats[:, i] for i in range(4))
    ok = ~strong & (np.maximum(w, h) >= _BROKEN_LENGTH * typical)
    ok &= (h <= 1.2 * typical) & (w <= 1.2 * typical) & ~_touches_frame(stats, labels.shape)
    ok[0] = False
    if not ok.any():
        return out
    ink = digits[labels]
    pen = max(stroke_width(ink), 1e-6)
    side = 2 * max(1, round(_BROKEN_GAP * pen)) + 1
    near = cv2.dilate(ink.astype(np.uint8), np.ones((side, side), np.uint8)) > 0
    for i in np.flatnonzero(ok):
        box = np.s_[y[i] : y[i] + h[i], x[i] : x[i] + w[i]]
        part = labels[box] == i
        if not (near[box] & part).any():
            continue
        if np.percentile(ink8[box][part], 90) < _BROKEN_PEAK * grow:
            continue
        if 0.3 <= stroke_width(part) / pen <= 1.2:
            out[box] |= part
    return out


def binarise(ink: np.ndarray) -> np.ndarray:
    """Ink mask by hysteresis: seeds above max(Otsu, noise floor), grown down to half that,
    so faint parts of a stroke stay attached while paper texture stays out."""
    ink8 = ink if ink.dtype == np.uint8 else (np.clip(ink, 0, 1) * 255).astype(np.uint8)
    seed, grow = _levels(ink8)
    return _hysteresis(ink8 > grow, ink8, seed)


# ----------------------------------------------------------------------- ruled lines


def _long_runs(mask8: np.ndarray, length: int) -> np.ndarray:
    """Pixels of straight horizontal-ish runs at least ``length`` long, at small tilts.

    Each tilt is undone by a shear, so a 1-px-tall opening kernel fits the line. A line
    tilted between two of the shears drifts across rows along the run: found only in
    pieces at the exact band, it is taken from a band a row wider on each side, where
    the exact band misses a tenth of it or more."""
    h, w = mask8.shape
    thick = cv2.dilate(mask8, np.ones((5, 1), np.uint8))  # tolerate residual tilt
    # Faint lines binarise as dashes: bridge short gaps along the line.
    thick = cv2.morphologyEx(thick, cv2.MORPH_CLOSE, np.ones((1, 7), np.uint8))
    exact, loose = np.zeros_like(mask8), np.zeros_like(mask8)
    kernel = np.ones((1, length), np.uint8)
    for deg in _RULE_ANGLES_DEG:
        t = math.tan(math.radians(deg))
        shear = np.float32([[1, 0, 0], [-t, 1, 0]])
        img = cv2.warpAffine(thick, shear, (w, h), flags=cv2.INTER_NEAREST) if deg else thick
        opened = cv2.morphologyEx(img, cv2.MORPH_OPEN, kernel)
        if not opened.any():
            continue
        for found, rows in ((exact, 5), (loose, 3)):
            band = cv2.erode(opened, np.ones((rows, 1), np.uint8))
            if deg:
                band = cv2.warpAffine(
                    band, shear, (w, h), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP
                )
            found |= band
    n, labels, stats, _ = cv2.connectedComponentsWithStats(loose, connectivity=8)
    if n <= 1:
        return exact
    near = cv2.dilate(exact, np.ones((3, 1), np.uint8)) > 0
    covered = np.bincount(labels[near & (loose > 0)], minlength=n)
    pieces = covered < 0.9 * stats[:, cv2.CC_STAT_AREA]
    pieces[0] = False
    return exact | (pieces[labels] * loose).astype(np.uint8)


def _rule_masks(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ink pixels on long straight horizontal and on long straight vertical lines."""
    h, w = mask.shape
    f = 2 if max(h, w) > 800 else 1  # detect at half resolution: cheap and tilt-tolerant
    small = mask.astype(np.uint8)
    if f > 1:
        # A pixel of the small mask is ink where any pixel of its block is: averaged as
        # uint8, a block half covered (a thin line straddling two block rows) rounds to 0
        # and the line breaks into dashes too short to be found.
        small = cv2.resize(small.astype(np.float32), (w // f, h // f), interpolation=cv2.INTER_AREA)
        small = (small > 0).astype(np.uint8)
    sh, sw = small.shape
    found = (
        _long_runs(small, max(20, int(sw * _RULE_LEN_FRAC))),
        _long_runs(np.ascontiguousarray(small.T), max(20, int(sh * _RULE_LEN_FRAC))).T,
    )
    out = []
    for rules in found:
        if not rules.any():
            out.append(np.zeros_like(mask))
            continue
        rules = cv2.dilate(np.ascontiguousarray(rules), np.ones((3, 3), np.uint8))
        if f > 1:
            rules = cv2.resize(rules, (w, h), interpolation=cv2.INTER_NEAREST)
        out.append((rules > 0) & mask)
    return out[0], out[1]


def remove_rules(mask: np.ndarray, ink8: np.ndarray | None = None, seed: float = 0.0) -> np.ndarray:
    """Remove ruled lines (and margins, grid lines) from an ink mask.

    Only pixels whose ink run across the line is no longer than the line is thick are
    removed, so digit strokes crossing a line stay whole. Line segments shorter than 2.5
    digit heights, or thicker than a ruled line, are kept (a 7's bar, a marker stroke)."""
    horiz, vert = _rule_masks(mask)
    rules = horiz | vert
    if not rules.any():
        return mask
    n, labels, stats, _ = cv2.connectedComponentsWithStats(rules.astype(np.uint8), connectivity=8)

    # Digit height without the candidate lines (which join everything they cross); when
    # ``mask`` is a weak (low-threshold) mask, keep only its parts with real ink in them.
    def strong(m: np.ndarray) -> np.ndarray:
        return m if ink8 is None else _hysteresis(m, ink8, seed)

    digit_height = _typical_height(strong(mask)) or _typical_height(strong(mask & ~rules))
    if digit_height is None:
        return mask
    length = np.maximum(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT])
    is_rule = length >= 2.5 * digit_height
    is_rule[0] = False
    max_thickness = max(8.0, max(mask.shape) / 100)
    thickness = np.zeros(n)
    for i in np.flatnonzero(is_rule):
        x, y, w, h = stats[i, :4]
        # width = 2 * area / outline also holds for a grid of lines joined into one piece
        thickness[i] = stroke_width(labels[y : y + h, x : x + w] == i)
        is_rule[i] = thickness[i] <= max_thickness
    if not is_rule.any():
        return mask
    on_rule = is_rule[labels]
    # A stroke crosses a rule where its run across the rule is longer than the rule is
    # thick. Where the rules join into one grid, that piece's width is mostly its thin
    # lines': a broader margin, measured with them, looked crossed along its length.
    k = 1.6 * float(np.max(thickness[is_rule])) + 2
    k_h, k_v = (_odd(max(k, 1.6 * stroke_width(r & on_rule) + 2)) for r in (horiz, vert))
    m8 = mask.astype(np.uint8)
    crossing_v = cv2.morphologyEx(m8, cv2.MORPH_OPEN, np.ones((k_h, 1), np.uint8)) > 0
    crossing_h = cv2.morphologyEx(m8, cv2.MORPH_OPEN, np.ones((1, k_v), np.uint8)) > 0
    # Where a horizontal and a vertical rule cross, both tests see a long run: drop it.
    drop = on_rule & ((horiz & ~crossing_v) | (vert & ~crossing_h) | (horiz & vert))
    if ink8 is not None and drop.any():
        # Pen strokes lying along a line (a 7's bar on the rule) are darker than the
        # printed line: keep pixels clearly darker than their line's average.
        total = np.bincount(labels[drop], weights=ink8[drop], minlength=n)
        count = np.bincount(labels[drop], minlength=n)
        level = total / np.maximum(count, 1)
        limit = np.maximum(np.maximum(1.5 * level, level + 30.0), seed)
        drop &= ink8 < limit[labels]
    return mask & ~drop


# ------------------------------------------------------------------------ components


def _typical_height(mask: np.ndarray) -> float | None:
    """Ink-weighted median height of components: dominated by digits, not by specks.
    Page-sized components (ruled lines joined by a margin, page edges) do not count;
    None when they hold most of the ink."""
    _, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return _typical_height_of(stats[1:], mask.shape)


def _typical_height_of(stats: np.ndarray, shape: tuple[int, ...]) -> float | None:
    """``_typical_height`` of the components with these stats (OpenCV's table, without the
    background) in an image of this shape."""
    if len(stats) == 0:
        return None
    h = stats[:, cv2.CC_STAT_HEIGHT].astype(np.float64)
    w = stats[:, cv2.CC_STAT_WIDTH].astype(np.float64)
    a = stats[:, cv2.CC_STAT_AREA].astype(np.float64)
    ok = (h < 0.5 * shape[0]) & (w < 0.5 * shape[1])
    if a[ok].sum() < 0.5 * a.sum():
        return None
    return _weighted_median(h[ok], a[ok])


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """The smallest value at or below which half the total weight lies."""
    order = np.argsort(values)
    cum = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cum, cum[-1] / 2)])


def _stroke_length(labels: np.ndarray, stats: np.ndarray, i: int) -> float:
    """The length of the strokes of component ``i`` (its area over its stroke width)."""
    x, y, w, h, area = (int(v) for v in stats[i, :5])
    return area / max(stroke_width(labels[y : y + h, x : x + w] == i), 1.0)


def _blobs(mask: np.ndarray, desk: np.ndarray | None = None) -> tuple[list[_Blob], float]:
    """Plausible digit parts (and the typical digit height), noise and page edges dropped.
    ``desk`` (``page_region.desk_mask``) marks the desk around the page, whose marks do
    not set the typical height."""
    H, W = mask.shape
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    x, y, w, h, area = (stats[:, i] for i in range(5))
    keep = np.ones(n, bool)
    keep[0] = False
    keep &= area >= max(6, 1e-5 * H * W)
    border = _touches_frame(stats, mask.shape)
    # Page edges, table, shadow boundaries: large things touching the border.
    keep &= ~(border & ((w > 0.4 * W) | (h > 0.4 * H)))
    # Solid filled regions are not pen strokes.
    keep &= ~((area > 0.85 * w * h) & (w > 0.1 * W) & (h > 0.1 * H))
    idx = np.flatnonzero(keep)
    if idx.size == 0:
        return [], 0.0
    # The typical height comes from components inside the frame and on the page when
    # there are any: the page's edge against the desk is a long strip touching the
    # border and holds much ink, and a mark on the desk may outweigh a few small digits.
    off = np.zeros(n, bool)
    if desk is not None:
        off = desk[np.minimum(y + h // 2, H - 1), np.minimum(x + w // 2, W - 1)].astype(bool)
    for candidates in (keep & ~border & ~off, keep & ~border):
        if candidates.any():
            idx = np.flatnonzero(candidates)
            break
    # Each part counts by the length of its strokes, not its area: a shadow's solid tip
    # outweighed all of a page's thin digits by area, and they were dropped as specks.
    length = np.array([_stroke_length(labels, stats, i) for i in idx])
    typical = _weighted_median(h[idx].astype(np.float64), length)
    size = np.maximum(w, h)
    keep &= size >= 0.15 * typical  # specks and dots
    keep &= h <= 3.0 * typical  # much taller than any digit
    keep &= ~((w > 4.0 * typical) & (h < 0.5 * typical))  # leftover rules, underlines
    keep &= ~(border & (h > 1.5 * typical))  # shadow edges running off the page
    # Solid wedges in corners (a shadow edge meeting the border) are not pen strokes;
    # a 1 is solid too, but narrow.
    keep &= ~(border & (area > 0.45 * w * h) & (w > 0.35 * h))
    keep &= ~(border & (size < 0.6 * typical))  # debris cut by the frame
    # Slivers along the frame (the page's edge against the desk) and the page's corners.
    keep &= ~(border & ((np.minimum(w, h) < 0.35 * size) | (w > 2.0 * typical)))
    # Long thin dashes far wider than a 5's detached bar: underlines, leftover rules.
    keep &= ~((w > 1.2 * typical) & (h < 0.35 * typical))
    blobs, widths = [], []
    for i in np.flatnonzero(keep):
        xs, ys, ws, hs = int(x[i]), int(y[i]), int(w[i]), int(h[i])
        blob = _Blob(xs, ys, ws, hs, labels[ys : ys + hs, xs : xs + ws] == i)
        blobs.append(blob)
        widths.append(stroke_width(blob.mask))
    if len(blobs) >= 3:
        # Leftover pieces of printed rules or grids are drawn much thinner than the digits.
        sw = np.asarray(widths)
        big = np.asarray([b.h >= 0.5 * typical for b in blobs])
        if big.any():
            pen = float(np.median(sw[big]))
            # ...and solid patches (a shadow's corner, a smudge) much thicker than the pen.
            blobs = [
                b
                for b, s in zip(blobs, sw, strict=True)
                if (s >= 0.4 * pen or pen < 3) and s <= 3.0 * pen
            ]
    return blobs, typical


def _union(a: _Blob, b: _Blob) -> _Blob:
    x0, y0 = min(a.x, b.x), min(a.y, b.y)
    x1, y1 = max(a.x + a.w, b.x + b.w), max(a.y + a.h, b.y + b.h)
    m = np.zeros((y1 - y0, x1 - x0), bool)
    for p in (a, b):
        m[p.y - y0 : p.y - y0 + p.h, p.x - x0 : p.x - x0 + p.w] |= p.mask
    return _Blob(x0, y0, x1 - x0, y1 - y0, m)


def _tight(x: int, y: int, m: np.ndarray) -> _Blob | None:
    rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
    if rows.size == 0:
        return None
    m = m[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    return _Blob(x + int(cols[0]), y + int(rows[0]), m.shape[1], m.shape[0], m)


def _merge_fragments(line: list[_Blob], height: float) -> list[_Blob]:
    """Join pieces of one digit whose union is still digit-sized: boxes overlapping
    strongly in x (a 5's detached bar, a stroke broken by a pen skip), or a short piece
    overlapping or almost touching a neighbour (the two strokes of an open 4)."""
    blobs = sorted(line, key=lambda b: b.x)
    merged = True
    while merged:
        merged = False
        for i in range(len(blobs)):
            for j in range(i + 1, len(blobs)):
                a, b = blobs[i], blobs[j]
                narrow = min(a.w, b.w)
                overlap = min(a.x + a.w, b.x + b.w) - max(a.x, b.x)
                short = min(a.h, b.h) < 0.75 * height
                v_overlap = min(a.y + a.h, b.y + b.h) - max(a.y, b.y)
                if overlap >= 0.8 * narrow:
                    max_width = 1.2 * height
                elif short and overlap >= 0.3 * narrow and v_overlap <= 0.15 * min(a.h, b.h):
                    # One piece above the other: two digits of a line never stack.
                    max_width = 1.45 * height
                elif short and overlap + 0.1 * height >= 0.5 * narrow:
                    max_width = 1.0 * height
                elif min(a.h, b.h) < 0.55 * height and overlap >= -0.15 * height:
                    # Too short to be a digit on its own, and next to one.
                    max_width = 1.45 * height
                else:
                    continue
                u = _union(a, b)
                if u.w <= max_width and u.h <= 1.6 * height:
                    blobs[i] = u
                    del blobs[j]
                    merged = True
                    break
            if merged:
                break
    return blobs


def _absorb_specks(blobs: list[_Blob], specks: list[_Blob], height: float) -> list[_Blob]:
    """Join a speck to the piece of a digit above or below it, when that piece is too
    short to be a whole digit and the two span no more than the line's digit height
    (a 6's stem apart from its loop, where the pen skipped). Other specks are dropped."""
    blobs = list(blobs)
    for s in sorted(specks, key=lambda b: b.w * b.h, reverse=True):
        for i, b in enumerate(blobs):
            overlap = min(s.x + s.w, b.x + b.w) - max(s.x, b.x)
            if b.h >= 0.75 * height or overlap < 0.8 * s.w:
                continue
            u = _union(b, s)
            if u.h <= 1.1 * height and u.w <= 1.2 * height:
                blobs[i] = u
                break
    return blobs


def _main_parts(m: np.ndarray) -> np.ndarray:
    """Drop slivers of a neighbour that a straight cut leaves in a piece."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(m.astype(np.uint8), connectivity=8)
    if n <= 2:
        return m
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.zeros(n, bool)
    keep[1:] = areas >= 0.15 * areas.max()
    return keep[labels]


def _split_touching(blob: _Blob, width: float, height: float) -> list[_Blob]:
    """Cut a blob several digits wide at the weakest columns of its ink profile.

    Only columns crossing a single stroke may be cut: touching digits meet at one stroke,
    while the middle of a wide 0, 2 or 7 crosses two or three, so it stays whole."""
    n = int(np.clip(round(blob.w / width), 2, 6))
    profile = blob.mask.sum(axis=0).astype(np.float64)
    profile = np.convolve(profile, np.ones(3) / 3, mode="same")
    step = blob.w / n
    m8 = blob.mask.astype(np.int8)
    runs = (np.diff(m8, axis=0, prepend=0) == 1).sum(axis=0)  # ink runs per column
    cuts = [0]
    for k in range(1, n):
        lo = max(cuts[-1] + 1, int(k * step - 0.35 * step))
        hi = min(blob.w - 1, int(k * step + 0.35 * step) + 1)
        if hi <= lo:
            continue
        dist = np.abs(np.arange(lo, hi) - k * step) / step
        cost = profile[lo:hi] + 0.5 * dist * float(profile.max())
        cost[runs[lo:hi] > 1] = np.inf
        if np.isfinite(cost).any():
            cuts.append(lo + int(np.argmin(cost)))
    cuts.append(blob.w)
    pieces, joints = [], []  # joints[i]: ink across the cut between piece i and i + 1
    for a, b in itertools.pairwise(cuts):
        m = np.zeros_like(blob.mask)
        m[:, a:b] = blob.mask[:, a:b]
        piece = _tight(blob.x, blob.y, _main_parts(m))
        if piece is not None:
            if pieces:
                joints.append(float(profile[a]))
            pieces.append(piece)

    # A piece much shorter or narrower than the line's digits (but not a slim 1) is part
    # of a neighbour (the tail of a wide 2, the hook of a 3): join it back across its
    # stronger joint.
    def fragment(p: _Blob) -> bool:
        return p.h < 0.6 * height or (p.w < 0.6 * width and p.w > 0.45 * p.h)

    while len(pieces) > 1:
        short = [i for i, p in enumerate(pieces) if fragment(p)]
        if not short:
            break
        i = short[0]
        left = joints[i - 1] if i > 0 else -1.0
        right = joints[i] if i < len(joints) else -1.0
        j = i - 1 if left >= right else i
        pieces[j : j + 2] = [_union(pieces[j], pieces[j + 1])]
        del joints[j]
    return pieces


# Slopes (dx per dy) of the cut lines tried between touching digits: handwriting leans,
# and two slanted digits that touch are often separable only by a slanted cut.
_CUT_SLOPES = (-0.35, -0.18, 0.0, 0.18, 0.35)
# A cut between touching digits crosses one stroke: its ink along the cut is at most this
# many pen widths (the middle of a 0 or the body of a 2 crosses two or more strokes).
_CUT_MAX_PENS = 2.0
# Each piece of a cut is at least this fraction of the blob's height: touching digits are
# about equally tall, while cutting a 4's bar or a 5's top leaves a short piece.
_PIECE_MIN_HEIGHT = 0.85
# A 1's ink run centres lie this close (RMS, fraction of its height) to a straight line.
_ONE_RMS = 0.03
# Two touching digits (neither a 1) make a blob at least this much wider than tall.
_PAIR_ASPECT = 1.1


def _core(blob: _Blob, ink8: np.ndarray) -> np.ndarray:
    """The blob's ink at half its stroke strength or more: the pen line as seen, without
    the faint halo that the low binarisation threshold adds (and that joins neighbours)."""
    sub = ink8[blob.y : blob.y + blob.h, blob.x : blob.x + blob.w]
    vals = sub[blob.mask]
    if vals.size == 0:
        return blob.mask
    return blob.mask & (sub >= 0.5 * float(np.percentile(vals, 90)))


def _one_like(m: np.ndarray) -> bool:
    """A narrow piece that is a single straight stroke (a 1), not the arm of an open 0 or
    the side of a 3: one ink run per row, with run centres close to a straight line."""
    runs = (np.diff(m.astype(np.int8), axis=1, prepend=0) == 1).sum(axis=1)
    inked = runs > 0
    if inked.sum() < 5 or float(np.mean(runs[inked] <= 1)) < 0.9:
        return False
    rows = np.flatnonzero(inked)
    cols = np.arange(m.shape[1], dtype=np.float64)
    centres = (m[rows] * cols).sum(axis=1) / m[rows].sum(axis=1)
    fit = np.polyval(np.polyfit(rows, centres, 1), rows)
    rms = float(np.sqrt(np.mean((centres - fit) ** 2)))
    return rms <= max(1.5, _ONE_RMS * m.shape[0])


def _cut_pieces(blob: _Blob, ink8: np.ndarray, height: float, pen: float) -> list[_Blob] | None:
    """The best single cut of a blob into two digit-sized pieces, or None.

    Cut lines at a few slants are scored by the (half-strength) ink they cross; a cut is
    valid only when it crosses one stroke, thinly, and leaves two pieces each as tall as
    the blob (a cut through a 5's bar, a 7's top or a 4's bar leaves a short piece; one
    through a 0 crosses two strokes). Narrow pieces must be straight strokes (a 1), not
    the side of a 0."""
    core = _core(blob, ink8)
    h, w = core.shape
    ys, xs = np.nonzero(core)
    total = ys.size
    rows = np.flatnonzero(core.any(axis=1))
    if total == 0 or w < 4:
        return None
    core_h = int(rows[-1] - rows[0] + 1)
    core_cols = np.flatnonzero(core.any(axis=0))
    core_w = int(core_cols[-1] - core_cols[0] + 1)
    mys, mxs = np.nonzero(blob.mask)
    best: tuple[float, list[_Blob]] | None = None
    for slope in _CUT_SLOPES:
        off = np.round(-slope * (np.arange(h) - h / 2)).astype(np.int64)
        off -= off.min()
        cols = xs + off[ys]
        sheared = np.zeros((h, w + int(off.max()) + 1), np.int8)
        sheared[ys, cols] = 1
        prof = sheared.sum(axis=0)
        runs = (np.diff(sheared, axis=0, prepend=0) == 1).sum(axis=0)
        cum = np.cumsum(prof)
        ok = (runs <= 1) & (prof <= _CUT_MAX_PENS * pen + 1)
        ok &= (cum >= 0.1 * total) & (total - cum >= 0.1 * total)
        cand = np.flatnonzero(ok)
        # The cheapest few cuts at this slant, the first valid one counts.
        for c in cand[np.argsort(prof[cand], kind="stable")][:4]:
            sel = cols <= c
            # Cheap test first: each side's rows must already span a digit's height.
            need = max(_PIECE_MIN_HEIGHT * core_h, 0.65 * height)
            if np.ptp(ys[sel]) + 1 < need or np.ptp(ys[~sel]) + 1 < need:
                continue
            left = np.zeros_like(core)
            left[ys[sel], xs[sel]] = True
            right = core & ~left
            parts = [_main_parts(left), _main_parts(right)]
            kinds = [_piece_kind(m, core_h, height) for m in parts]
            if None in kinds:
                continue
            # Two ordinary digits side by side are wider than tall; a blob not that wide
            # is cut only beside a 1 (an open 0 would otherwise lose an arm).
            if "one" not in kinds and core_w < _PAIR_ASPECT * core_h:
                continue
            full_left = np.zeros_like(core)
            sel = (mxs + off[mys]) <= c
            full_left[mys[sel], mxs[sel]] = True
            pieces = []
            for full, part in ((full_left, parts[0]), (blob.mask & ~full_left, parts[1])):
                # Keep the halo pixels of the piece's own strokes, not of slivers dropped.
                grown = cv2.dilate(part.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
                p = _tight(blob.x, blob.y, full & (grown | part))
                if p is None:
                    break
                pieces.append(p)
            if len(pieces) != 2:
                continue
            score = float(prof[c]) / max(pen, 1.0) + 0.3 * abs(slope)
            if best is None or score < best[0]:
                best = (score, pieces)
            break
    return None if best is None else best[1]


def _piece_kind(m: np.ndarray, blob_h: int, height: float) -> str | None:
    """ "digit" or "one" for a piece that can stand as a digit of its own, else None."""
    rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
    if rows.size == 0:
        return None
    ph, pw = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
    if ph < 0.65 * height or ph < _PIECE_MIN_HEIGHT * blob_h or pw > 1.3 * ph:
        return None
    m = m[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    if pw < 0.45 * ph:
        return "one" if _one_like(m) else None
    # Every digit but a 1 or a 7 has rows crossing two strokes (a loop, a bowl, a stem
    # under a bar); a 7 has its bar on top. Half of an open 0 (an arc) has neither.
    runs = (np.diff(m.astype(np.int8), axis=1, prepend=0) == 1).sum(axis=1)
    if float(np.mean(runs >= 2)) >= 0.15:
        return "digit"
    top = m[: max(1, round(0.2 * ph))]
    return "digit" if int(top.sum(axis=1).max()) >= 0.5 * pw else None


def _split_touching2(
    blob: _Blob, ink8: np.ndarray, height: float, pen: float, depth: int = 0
) -> list[_Blob]:
    """Cut a blob into touching digits, recursively (three or more in one clump)."""
    if depth > 4 or blob.w < 0.7 * min(blob.h, height):
        return [blob]
    pieces = _cut_pieces(blob, ink8, height, pen)
    if pieces is None:
        return [blob]
    return [q for p in pieces for q in _split_touching2(p, ink8, height, pen, depth + 1)]


# A blob left whole gets a two-piece alternative when it is at least this wide for its
# height: a 1 pressed against a 6 makes a blob not much wider than a digit. Stop 16
# lowered it from 0.75: with alternatives decided by the truth, generated pages of seed 1
# had 99.37 -> 99.52% of their digits found.
_ALT_ASPECT = 0.45
# The alternative's cut leaves at least this share of the ink on either side.
_ALT_MIN_SHARE = 0.15
# Besides its least-ink cut, each slant is also cut where it leaves these shares of the ink
# on the left: overlapping digits share columns, so the cheapest cut is often not theirs.
_ALT_SHARES = (0.3, 0.4, 0.5, 0.6, 0.7)
# Neighbours on a line get a joined alternative when the gap between them is at most this
# fraction of the line's digit height and their union is no wider than _JOIN_WIDTH of it
# (a 5's detached bar, a broken stroke). Stop 15 widened them from 0.2 and 1.3: the model
# then takes more such unions, on generated pages of seeds 0 / 1 / 2 spurious boxes
# 1.14 / 1.06 / 1.24% -> 0.98 / 1.01 / 1.15%, no digit fewer found.
_JOIN_GAP = 0.35
_JOIN_WIDTH = 1.6


def _two_pieces(blob: _Blob, ink8: np.ndarray) -> list[list[_Blob]]:
    """A wide blob as two digits side by side: for each slant, the cut crossing the least
    ink (near the middle of the ink) and cuts at a few fixed shares of the ink, cheapest
    first. Unlike ``_cut_pieces`` a cut may cross several strokes (two digits that overlap
    share columns), so only a recogniser can tell whether one is right."""
    core = _core(blob, ink8)
    h = core.shape[0]
    ys, xs = np.nonzero(core)
    mys, mxs = np.nonzero(blob.mask)
    if ys.size < 8:
        return []
    found: list[tuple[float, list[_Blob]]] = []
    for slope in _CUT_SLOPES:
        off = np.round(-slope * (np.arange(h) - h / 2)).astype(np.int64)
        off -= off.min()
        prof = np.bincount(xs + off[ys])
        share = np.cumsum(prof) / ys.size
        cand = np.flatnonzero((share >= _ALT_MIN_SHARE) & (share <= 1.0 - _ALT_MIN_SHARE))
        if cand.size == 0:
            continue
        cost = prof[cand] * (1.0 + np.abs(share[cand] - 0.5))
        picks = {int(np.argmin(cost))}
        for q in _ALT_SHARES:
            picks.add(int(np.argmin(np.abs(share[cand] - q))))
        for i in sorted(picks):
            pieces = _sides(blob, mys, mxs, (mxs + off[mys]) <= int(cand[i]))
            if pieces and all(pieces[0].box != seen[0].box for _, seen in found):
                found.append((float(cost[i]), pieces))
    return [pieces for _, pieces in sorted(found, key=lambda f: f[0])]


def _sides(blob: _Blob, ys: np.ndarray, xs: np.ndarray, left: np.ndarray) -> list[_Blob] | None:
    """The two pieces a cut leaves of the blob's ink pixels (ys, xs), slivers of the other
    side dropped; None when either is under half the blob's height."""
    pieces = []
    for side in (left, ~left):
        m = np.zeros_like(blob.mask)
        m[ys[side], xs[side]] = True
        piece = _tight(blob.x, blob.y, _main_parts(m))
        if piece is None or piece.h < 0.5 * blob.h:
            return None
        pieces.append(piece)
    return pieces


def _line_digits(
    line: list[_Blob], page_width: float, page_height: float, ink8: np.ndarray
) -> list[_Blob]:
    """Merge fragments, split touching digits and drop non-digits within one line."""
    heights = np.array([b.h for b in line], np.float64)
    # The line's tallest digits set its height, but not a blob far taller than the page's
    # digits (one joined to a shadow's edge): beside it the digits would look like pieces.
    usual = heights[heights <= _TALL_BLOB * page_height]
    if usual.size == 0:
        usual = heights
    height = float(np.median(usual[usual >= 0.5 * usual.max()]))
    # Specks would otherwise be merged into a neighbouring digit and distort its crop,
    # but for the pieces of a digit broken by pen skips (``_absorb_specks``).
    specks = [b for b in line if max(b.w, b.h) < 0.3 * height]
    blobs = _merge_fragments([b for b in line if max(b.w, b.h) >= 0.3 * height], height)
    blobs = _absorb_specks(blobs, specks, height)
    wides = [b.w for b in blobs if b.w > 0.4 * b.h and b.w < 1.1 * b.h]
    width = float(np.median(wides)) if wides else 0.0
    width = max(width, 0.55 * height, page_width)
    pens = [stroke_width(_core(b, ink8)) for b in blobs if b.h >= 0.5 * height]
    pen = float(np.median(pens)) if pens else 0.0
    out: list[_Blob] = []
    source: dict[int, int] = {}  # id of a piece of a cut blob -> the blob's index
    for k, b in enumerate(blobs):
        parts = _split_touching2(b, ink8, height, pen) if pen > 0 else [b]
        if len(parts) == 1 and b.w > _SPLIT_ASPECT * b.h and b.w > _SPLIT_WIDTH * width:
            parts = _split_touching(b, width, height)
        if len(parts) > 1:
            source.update((id(p), k) for p in parts)
        out.extend(parts)
    digits, dashes = [], []
    for b in out:
        if max(b.w, b.h) < 0.35 * height:
            continue  # specks, dots, punctuation
        if b.h < 0.3 * height and b.w > 1.5 * b.h:
            dashes.append(b)  # dashes, minus signs, underline pieces; or a 5's bar
            continue
        digits.append(b)
    digits = [_with_bar(b, dashes, height) for b in sorted(digits, key=lambda b: b.x)]
    for b in digits:
        b.splits = _offered(b, ink8)
    digits.sort(key=lambda b: b.x + b.w / 2)
    for a, b in itertools.pairwise(digits):
        cut_from = source.get(id(a))
        hard_cut = cut_from is not None and cut_from == source.get(id(b))
        close = b.x - (a.x + a.w) <= _JOIN_GAP * height
        if not (hard_cut or close):
            continue
        u = _union(a, b)
        if hard_cut:
            a.recuts = _Splits(u, ink8)
        if close and u.w <= _JOIN_WIDTH * height and u.h <= _JOIN_WIDTH * height:
            a.joined = u
    return digits


def _with_bar(blob: _Blob, dashes: list[_Blob], height: float) -> _Blob:
    """The blob with a dash that starts at its top right, as a 5's detached bar does
    (too far out to be merged as a fragment, too flat to stand as a digit); the dash is
    used up."""
    for k, d in enumerate(dashes):
        starts = blob.x < d.x <= blob.x + blob.w + 0.15 * height
        on_top = blob.y - 0.2 * height <= d.y + d.h / 2 <= blob.y + 0.35 * blob.h
        wide = max(blob.x + blob.w, d.x + d.w) - blob.x  # the union's width
        if starts and on_top and wide <= _JOIN_WIDTH * height:
            del dashes[k]
            return _union(blob, d)
    return blob


def _drop_solid(mask: np.ndarray) -> np.ndarray:
    """Remove ink far wider than the pen: the corner of a cast shadow, a smudge.

    Where a disk four pen widths across fits inside the ink, it is no stroke; such a
    patch would otherwise join the digits it touches into one blob. The pen is measured
    on the ink clear of the frame: the desk around a page, cut by the frame, is wide
    enough to make a disk the size of a shadow's corner look like a stroke.

    A part no bigger than a digit, clear of the frame, is kept whole: a digit written
    with a broad pen whose loops filled in (a 6, a 9) is solid too, but joins nothing."""
    inside = _inside_frame(mask)
    pen = stroke_width(inside)
    if pen < 1.0:
        return mask
    broad = _near_broad(mask, _odd(4.0 * pen)) > 0  # with the patch's ragged rim
    _, labels, stats, _ = cv2.connectedComponentsWithStats(inside.astype(np.uint8), connectivity=8)
    typical = _typical_height_of(stats[1:], mask.shape)
    if typical is not None:
        size = np.maximum(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT])
        digit_sized = (size <= _SOLID_DIGIT * typical) & ~_touches_frame(stats, mask.shape)
        digit_sized[0] = False
        broad &= ~digit_sized[labels]
    return mask & ~broad


def _inside_frame(mask: np.ndarray) -> np.ndarray:
    """The mask without its components that touch the image's frame (all of it when
    nothing else is left)."""
    _, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    clear = ~_touches_frame(stats, mask.shape)
    clear[0] = False
    return clear[labels] if clear.any() else mask


def _on_page(blobs: list[_Blob], desk: np.ndarray) -> list[_Blob]:
    """The blobs centred on the page, not on the desk around it (``page_region``).

    Writing is not dropped for lying in a desk-like region: marks there that line up
    into a row of at least _DESK_ROW (a number in a hard-edged shadow at the photo's
    edge) are kept; the desk's marks are lone."""
    off = [bool(desk[b.y + b.h // 2, b.x + b.w // 2]) for b in blobs]
    if not any(off):
        return blobs
    outside = [b for b, o in zip(blobs, off, strict=True) if o]
    rows = [row for row in group_lines([b.box for b in outside]) if len(row) >= _DESK_ROW]
    kept = {id(outside[i]) for row in rows for i in row}
    return [b for b, o in zip(blobs, off, strict=True) if not o or id(b) in kept]


def _segment(image: np.ndarray, light_ink: bool | None = None) -> list[list[_Blob]]:
    """Lines of digit blobs (working-image coordinates) in reading order."""
    grey = _page_grey(image, light_ink)
    ink8 = _ink8(grey)
    seed, grow = _page_levels(ink8)
    grow = _grow_level(ink8, seed, grow)
    # Rules are removed before hysteresis: a faint ruled line is then whole and long,
    # rather than short pieces grown out of the digits that touch it.
    weak = ink8 > grow
    if not weak.any():
        return []
    labels, stats, strong = _seeded_parts(remove_rules(weak, ink8, seed), ink8, seed)
    if not strong.any():
        return []
    mask = strong[labels] | _faint_digits(labels, stats, strong, ink8, grow)
    mask |= _broken_strokes(labels, stats, strong, ink8, grow)
    mask |= _lighter_digits(mask, ink8, grow)
    mask = _drop_solid(mask)
    desk = desk_mask(grey)
    blobs, typical = _blobs(mask, desk)
    blobs = _on_page(blobs, desk)
    if not blobs:
        return []
    # A typical digit width for the page, used where a line has too few digits to tell.
    wides = [b.w for b in blobs if 0.4 * b.h < b.w < 1.1 * b.h and b.h > 0.5 * typical]
    page_width = 0.9 * float(np.median(wides)) if wides else 0.0
    lines = []
    for idx in group_lines([b.box for b in blobs]):
        digits = _line_digits([blobs[i] for i in idx], page_width, typical, ink8)
        # A "line" of marks much smaller than the page's digits is debris, not writing.
        if digits and max(b.h for b in digits) >= 0.4 * typical:
            lines.append([_soft(b, ink8) for b in digits])
    return lines


# A digit's box is where its ink reaches half its strokes' strength, or half the
# strength of the strokes nearby where those reach this fraction of the digit's own and
# are drawn with a pen like its other strokes: a stroke drawn lighter than the rest (a
# 9's loop in a shadow, a 4's arm where the pen ran dry) keeps its place in the box,
# while a printed grid's hairline or a shadow's broad edge joined to the digit does not
# (docs/reading_history.md, "Stop 34").
_LIGHT_STROKE = 0.35
_LIGHT_PEN = (0.3, 1.5)


def _half_strength(sub: np.ndarray, mask: np.ndarray, peak: float) -> np.ndarray:
    """The pixels of a blob's ink ``sub`` (within ``mask``) at half strength or more:
    of the blob's strokes (``peak``), or of a lighter stroke (``_LIGHT_STROKE``): half
    the strongest ink within about a pen's reach (a fifth of the blob's height), in a
    part whose width is ``_LIGHT_PEN`` times the strong strokes'. The low threshold that
    keeps faint strokes attached leaves a halo round every stroke; cut at half strength
    it does not fatten thin digits' boxes."""
    strong = mask & (sub >= 0.5 * peak)
    k = _odd(0.2 * sub.shape[0])
    local = cv2.dilate(np.where(mask, sub, 0.0), np.ones((k, k), np.uint8))
    light = mask & ~strong & (local >= _LIGHT_STROKE * peak) & (sub >= 0.5 * local)
    if not light.any() or not strong.any():
        return strong | light
    n, parts = cv2.connectedComponents(light.astype(np.uint8), connectivity=8)
    pen = max(stroke_width(strong), 1.0)
    lo, hi = _LIGHT_PEN
    keep = np.zeros(n, bool)
    for i in range(1, n):
        keep[i] = lo <= stroke_width(parts == i) / pen <= hi
    return strong | keep[parts]


def _soft(blob: _Blob, ink8: np.ndarray) -> _Blob:
    """Anti-aliased ink of the blob (like MNIST's grey edges), relative to its own
    strokes, and its box where the ink reaches half strength (``_half_strength``)."""
    sub = ink8[blob.y : blob.y + blob.h, blob.x : blob.x + blob.w].astype(np.float32)
    peak = max(float(np.percentile(sub[blob.mask], 90)), 1.0)
    soft = np.where(blob.mask, np.clip(sub / peak, 0.0, 1.0), 0.0)
    core = _tight(blob.x, blob.y, _half_strength(sub, blob.mask, peak))
    alternatives = {
        "splits": blob.splits,
        "joined": _soft(blob.joined, ink8) if blob.joined is not None else None,
        "recuts": blob.recuts,
    }
    if core is None:
        return _Blob(blob.x, blob.y, blob.w, blob.h, blob.mask, **alternatives)
    dx, dy = core.x - blob.x, core.y - blob.y
    mask = soft[dy : dy + core.h, dx : dx + core.w]
    return _Blob(core.x, core.y, core.w, core.h, mask, **alternatives)


def single_digit_ink(image: np.ndarray, light_ink: bool | None = None) -> np.ndarray | None:
    """Soft ink (float32, 0 = paper) of everything that looks like writing in a photo
    expected to hold one digit, cropped to it; None when nothing is found. Uses the
    full pipeline, so uneven light and tinted paper are handled; the polarity is
    detected unless ``light_ink`` says it."""
    blobs = [b for line in _segment(np.asarray(image), light_ink) for b in line]
    if not blobs:
        return None
    x0, y0 = min(b.x for b in blobs), min(b.y for b in blobs)
    x1, y1 = max(b.x + b.w for b in blobs), max(b.y + b.h for b in blobs)
    out = np.zeros((y1 - y0, x1 - x0), np.float32)
    for b in blobs:
        view = out[b.y - y0 : b.y - y0 + b.h, b.x - x0 : b.x - x0 + b.w]
        np.maximum(view, b.mask, out=view)
    return out


def _to_original(box: tuple[int, int, int, int], scale: float) -> tuple[int, int, int, int]:
    x, y, w, h = box
    x0, y0 = math.floor(x * scale), math.floor(y * scale)
    x1, y1 = math.ceil((x + w) * scale), math.ceil((y + h) * scale)
    return x0, y0, x1 - x0, y1 - y0


def extract_digits(image: np.ndarray, scale: float = 1.0) -> list[list[Digit]]:
    """Digits of a photo as lines in reading order (lines top to bottom, digits left to
    right); [] for a page without digits. Boxes are multiplied by ``scale`` (from
    images.load_image_with_scale) to be in the original photo's pixels."""
    img = np.asarray(image)
    if img.ndim not in (2, 3) or min(img.shape[:2]) < 2:
        return []
    return [[_digit(b, scale) for b in line] for line in _segment(img)]


def _digit(blob: _Blob, scale: float) -> Digit:
    splits = blob.splits.scaled(scale) if blob.splits is not None else None
    joined = _digit(blob.joined, scale) if blob.joined is not None else None
    recuts = blob.recuts.scaled(scale) if blob.recuts is not None else None
    crop = to_mnist(blob.mask.astype(np.float32))
    return Digit(_to_original(blob.box, scale), crop, splits, joined, recuts)
