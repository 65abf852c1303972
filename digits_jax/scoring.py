"""Scoring a reading against the truth: digit accuracy by edit distance, line structure."""

from __future__ import annotations

from pathlib import Path


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions)."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def read_labels(path: Path) -> dict[str, str]:
    labels = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, truth = line.partition("\t")
            labels[name.strip()] = truth.strip()
    return labels


def score(truth: str, read: str) -> dict[str, object]:
    """Per-photo figures; ``truth`` and ``read`` are lines joined by '|'."""
    t_lines, r_lines = truth.split("|"), read.split("|") if read else []
    t_digits, r_digits = truth.replace("|", ""), read.replace("|", "")
    return {
        "truth": truth,
        "read": read,
        "digits": len(t_digits),
        "errors": edit_distance(t_digits, r_digits),
        "lines_right": [len(x) for x in t_lines] == [len(x) for x in r_lines],
    }
