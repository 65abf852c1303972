"""Reading pages end to end: synthetic photos, batching, errors, the read/extract/classify CLI."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from digits_jax import (
    cli,
    data,
    decision_rules,
    inference,
    pair_reader,
    reading,
    synthetic_pages,
    verifier,
)
from digits_jax.scoring import edit_distance

ASSETS = Path(__file__).resolve().parent.parent / "digits_jax" / "assets"


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """Three generated pages of real MNIST test digits, saved as JPEG, with their truth."""
    images, labels = data.load_split("test")
    root = tmp_path_factory.mktemp("pages")
    out = []
    for seed, difficulty in ((1, 0.2), (2, 0.4), (3, 0.6)):
        page = synthetic_pages.generate_page(
            np.random.default_rng(seed), images, labels, difficulty=difficulty
        )
        path = root / f"page{seed}.jpg"
        cv2.imwrite(str(path), page.image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        out.append((path, page.text()))
    return out


def test_reads_generated_pages(reader_model, pages):
    workdir, _ = reader_model
    classifier = inference.load_classifier(workdir)
    results, _ = reading.read_pages([p for p, _ in pages], classifier)
    digits = errors = 0
    for (_, truth), result in zip(pages, results, strict=True):
        read = "|".join(result.text_lines())
        t = truth.replace("|", "")
        digits += len(t)
        errors += edit_distance(t, read.replace("|", ""))
    # Three epochs of MNIST, photographed pages: nearly all digits right.
    assert 1 - errors / digits >= 0.92, (errors, digits)


def test_read_cli_json_annotate_crops(reader_model, tmp_path, capsys):
    workdir, _ = reader_model
    sample = ASSETS / "sample_page.jpg"
    truth = json.loads((ASSETS / "sample_page.json").read_text())["text"]
    code = cli.main(
        [
            "read",
            str(sample),
            "--model",
            str(workdir),
            "--json",
            "--annotate",
            str(tmp_path / "annotated.jpg"),
            "--crops",
            str(tmp_path / "crops"),
        ]
    )
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    (image,) = doc["images"]
    assert image["path"] == str(sample)
    assert (image["width"], image["height"]) == (1600, 1200)
    lines = image["lines"]
    assert [len(line["text"]) for line in lines] == [len(x) for x in truth.split("|")]
    for line in lines:
        assert "".join(line["numbers"]) == line["text"]
        for d in line["digits"]:
            assert set(d) == {"digit", "confidence", "box"}
            assert 0 <= d["digit"] <= 9 and 0 < d["confidence"] <= 1
            x, y, w, h = d["box"]
            assert 0 <= x < 1600 and 0 <= y < 1200 and w > 0 and h > 0
    assert cv2.imread(str(tmp_path / "annotated.jpg")).shape == (1200, 1600, 3)
    crops = sorted((tmp_path / "crops").glob("*.png"))
    assert len(crops) == sum(len(x) for x in truth.split("|"))
    assert cv2.imread(str(crops[0]), cv2.IMREAD_GRAYSCALE).shape == (28, 28)


def test_console_read_exits_fast_with_its_output_complete(reader_model, tmp_path):
    # The console entry point skips the interpreter's teardown after read: the JSON
    # must still arrive whole, and a bad photo in the batch still sets the exit code.
    workdir, _ = reader_model
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    sample = ASSETS / "sample_page.jpg"
    argv = ["read", str(bad), str(sample), "--model", str(workdir), "--json"]
    result = subprocess.run(
        [sys.executable, "-m", "digits_jax.cli", *argv],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == cli.EXIT_BAD_IMAGE, result.stderr
    assert result.stderr.count("\n") == 1 and "bad.jpg" in result.stderr
    doc = json.loads(result.stdout)
    assert [image["path"] for image in doc["images"]] == [str(bad), str(sample)]
    assert len(doc["images"][1]["lines"]) == 3


def test_read_batch_with_bad_and_empty_photos(reader_model, tmp_path, capsys):
    workdir, _ = reader_model
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    empty = tmp_path / "empty.png"
    cv2.imwrite(str(empty), np.full((400, 600, 3), 235, np.uint8))
    sample = ASSETS / "sample_page.jpg"
    code = cli.main(
        [
            "read",
            str(bad),
            str(empty),
            str(sample),
            "--model",
            str(workdir),
            "--annotate",
            str(tmp_path / "ann"),
        ]
    )
    out, err = capsys.readouterr()
    assert code == cli.EXIT_BAD_IMAGE
    assert err.count("digits-jax: error:") == 1 and "bad.jpg" in err and "Traceback" not in err
    assert f"== {sample}" in out and f"== {empty}" in out
    assert (tmp_path / "ann" / "sample_page_read.jpg").exists()
    # An empty page alone: no digits, exit 0.
    assert cli.main(["read", str(empty), "--model", str(workdir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["images"][0]["lines"] == []


def test_extract_and_classify_cli(reader_model, tmp_path, capsys):
    workdir, _ = reader_model
    sample = ASSETS / "sample_page.jpg"
    truth = json.loads((ASSETS / "sample_page.json").read_text())["text"].replace("|", "")
    assert cli.main(["extract", str(sample), "--crops", str(tmp_path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    boxes = [d for line in doc["images"][0]["lines"] for d in line]
    assert len(boxes) == len(truth) and all(Path(d["crop"]).exists() for d in boxes)
    # Classify the saved crops (they pass through unchanged) and a big, dark-on-light digit.
    big = tmp_path / "zbig.png"
    crop = cv2.imread(boxes[0]["crop"], cv2.IMREAD_GRAYSCALE)
    cv2.imwrite(str(big), 255 - cv2.resize(crop, (140, 140), interpolation=cv2.INTER_CUBIC))
    assert cli.main(["classify", str(tmp_path), "--model", str(workdir), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["images"]
    assert len(rows) == len(truth) + 1
    read = "".join(str(r["digit"]) for r in rows[:-1])
    assert sum(a == b for a, b in zip(read, truth, strict=True)) >= 0.85 * len(truth)
    assert rows[-1]["digit"] == rows[0]["digit"]


def test_read_and_extract_take_folders(reader_model, tmp_path, capsys):
    workdir, _ = reader_model
    photos = tmp_path / "photos"
    photos.mkdir()
    sample = cv2.imread(str(ASSETS / "sample_page.jpg"))
    cv2.imwrite(str(photos / "a.jpg"), sample)
    cv2.imwrite(str(photos / "b.png"), sample)
    (photos / "notes.txt").write_text("not a photo: skipped by its suffix")
    annotated = tmp_path / "annotated"
    assert (
        cli.main(["read", str(photos), "--model", str(workdir), "--annotate", str(annotated)]) == 0
    )
    assert capsys.readouterr().out.count("== ") == 2
    assert sorted(p.name for p in annotated.iterdir()) == ["a_read.jpg", "b_read.jpg"]
    assert cli.main(["extract", str(photos), "--json"]) == 0
    documents = json.loads(capsys.readouterr().out)["images"]
    assert [Path(d["path"]).name for d in documents] == ["a.jpg", "b.png"]


def test_model_errors_are_one_line(reader_model, tmp_path, capsys):
    sample = ASSETS / "sample_page.jpg"
    assert cli.main(["read", str(sample), "--model", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("digits-jax: error:") and "\n" not in err
    assert cli.main(["classify", str(tmp_path), "--model", str(reader_model[0])]) == 2
    assert "no images" in capsys.readouterr().err
    argv = ["read", str(sample), "--model", str(reader_model[0]), "--backend", "torch"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == "digits-jax: error: unknown backend 'torch' (one of numpy, jax)"


def test_min_confidence_marks_unsure_digits(reader_model, capsys):
    workdir, _ = reader_model
    sample = str(ASSETS / "sample_page.jpg")
    threshold = 0.999
    argv = ["read", sample, "--model", str(workdir), "--json", "--min-confidence", str(threshold)]
    assert cli.main(argv) == 0
    lines = json.loads(capsys.readouterr().out)["images"][0]["lines"]
    unsure = 0
    for line in lines:
        for char, d in zip(line["text"], line["digits"], strict=True):
            assert 0 <= d["digit"] <= 9  # the JSON keeps every digit ...
            if d["confidence"] < threshold:  # ... and the text marks the unsure ones
                assert char == "?"
                unsure += 1
            else:
                assert char == str(d["digit"])
    assert unsure > 0
    # An ensemble of the same model twice with three test-time views reads the page too.
    argv = ["read", sample, "--model", str(workdir), "--model", str(workdir), "--tta", "3"]
    assert cli.main(argv) == 0
    assert len(capsys.readouterr().out.split()) == len(lines)
    assert cli.main(["read", sample, "--model", str(workdir), "--min-confidence", "2"]) == 2
    assert cli.main(["read", sample, "--model", str(workdir), "--tta", "99"]) == 2


def test_both_backends_read_the_same(reader_model, capsys):
    workdir, _ = reader_model
    documents = []
    for backend in ("numpy", "jax"):
        argv = ["read", str(ASSETS / "sample_page.jpg"), "--model", str(workdir), "--json"]
        assert cli.main([*argv, "--backend", backend]) == 0
        documents.append(json.loads(capsys.readouterr().out)["images"][0]["lines"])
    numpy_doc, jax_doc = documents
    assert [line["text"] for line in numpy_doc] == [line["text"] for line in jax_doc]
    for a, b in zip(numpy_doc, jax_doc, strict=True):
        for da, db in zip(a["digits"], b["digits"], strict=True):
            assert da["box"] == db["box"]
            assert da["confidence"] == pytest.approx(db["confidence"], abs=1e-4)


class _ScriptedModel:
    """A stand-in model whose answers are set per crop: each crop's first pixel is its key."""

    def __init__(self, reads: dict[int, tuple[int, float]], pairs: dict[int, float] | None):
        self.reads, self.pairs = reads, pairs

    def probabilities(self, images, tta=1):
        out = np.full((len(images), 10), 0.0, np.float32)
        for row, image in zip(out, images, strict=True):
            digit, confidence = self.reads[round(float(image[0, 0]) * 1000)]
            row[:] = (1 - confidence) / 9
            row[digit] = confidence
        return out

    def pair_probability(self, images):
        if self.pairs is None:
            return None
        return np.array([self.pairs.get(round(float(image[0, 0]) * 1000), 0.0) for image in images])

    def read(self, images, tta=1):
        return self.probabilities(images, tta), self.pair_probability(images)


def _ids(line):
    return [id(d) for d in line]


def _digit(key, x, splits=None, joined=None, height=20, recuts=None):
    crop = np.zeros((28, 28), np.float32)
    crop[0, 0] = key / 1000
    return reading.Digit((x, 0, 10, height), crop, splits, joined, recuts)


def _logit(p):
    return np.log(p / (1 - p))


def test_alternatives_are_decided_by_the_detector_and_the_classifier(monkeypatch):
    # Known rules: two digits when the less sure piece is read with >= 0.99; one digit
    # when the union's logits of confidence minus p(two digits) reach 5.
    split = decision_rules.Rule((0, 0, 1, *[0] * 15), -_logit(0.99) + 1e-9)
    join = decision_rules.Rule((-1, 0, 0, 1, *[0] * 13), -5.0)
    monkeypatch.setattr(decision_rules, "SPLIT", split)
    monkeypatch.setattr(decision_rules, "JOIN", join)
    # The two-digit reader's odds of a pair: the crop's key plus a half, to trace them.
    monkeypatch.setattr(pair_reader, "pair_odds", lambda crops: crops[:, 0, 0] * 1000 + 0.5)
    # Digit 1 is wide with two cuts; digits 2 and 3 are neighbours that may be one.
    cut_a = (_digit(10, 0), _digit(11, 5))
    cut_b = (_digit(12, 0), _digit(13, 5))
    union = _digit(20, 20)
    line = [_digit(1, 0, splits=(cut_a, cut_b)), _digit(2, 20, joined=union), _digit(3, 25)]
    reads = {1: (0, 0.99), 2: (1, 0.6), 3: (7, 0.7), 20: (4, 0.98)}
    reads |= {10: (3, 0.999), 11: (5, 0.5), 12: (3, 0.999), 13: (8, 0.995)}
    pairs = {1: 0.99, 2: 0.3, 3: 0.2, 20: 0.1}
    model = _ScriptedModel(reads, pairs)
    (out,), probs = reading.resolve_alternatives([line], model)
    # The cut whose weaker piece is surer is the one the rule judges, and taken; the
    # neighbours become one 4.
    assert _ids(out) == _ids([cut_b[0], cut_b[1], union])
    assert probs.shape == (3, 10) and list(probs.argmax(axis=1)) == [3, 8, 4]
    page = reading.ExtractedPage("p", np.zeros((9, 9)), 1.0, [line])
    results = reading.classify_pages([reading.PageResult("p")], [page], model)
    assert results[0].lines[0].text == "384"
    # The page now holds the digits as read (what --crops saves and --annotate draws).
    assert _ids(page.lines[0]) == _ids(out)
    # The split rule's inputs: the detector's call, the whole's and pieces' confidences,
    # the blob's width for its line (all three 10 px wide), its aspect (10 x 20), the
    # shorter piece's height for the line (all 20 px tall), the crop verifier's calls on
    # the whole and the two pieces, and the two-digit reader's odds of a pair for the
    # whole.
    probs_of, pair_of = reading.first_pass(model, [line])
    assert list(probs_of) == list(pair_of) == _ids([*line, union])
    (candidate,) = reading.split_candidates(model, [line], probs_of, pair_of)
    assert candidate.cut == cut_b
    expected = [_logit(0.99), _logit(0.99), _logit(0.995), _logit(0.999), 1.0, 0.5, 1.0, 1.0]
    np.testing.assert_allclose(candidate.inputs[:8], expected, rtol=1e-5)
    calls = verifier.probabilities(np.stack([d.crop for d in (line[0], *cut_b)]))
    np.testing.assert_allclose(candidate.inputs[8:17], _logit(calls).ravel(), rtol=1e-5)
    np.testing.assert_allclose(candidate.inputs[17:], [1.5], rtol=1e-5)
    # The join rule's: the detector's calls and the confidences of the union, the left
    # and the right one, then the geometry (the two overlap by 5 px of a 20 px height),
    # then the reader's odds of a pair for the union.
    (candidate,) = reading.join_candidates([line], probs_of, pair_of)
    assert (candidate.digit, candidate.after) == (line[1], line[2])
    calls = [_logit(p) for p in (0.1, 0.3, 0.2, 0.98, 0.6, 0.7)]
    np.testing.assert_allclose(candidate.inputs[:6], calls, rtol=1e-5)
    assert list(candidate.inputs[6:16]) == [-0.25, 1, 1, 1, 1, 1, 0.5, 1, 0, 0]
    np.testing.assert_allclose(candidate.inputs[16:], [20.5], rtol=1e-5)
    # A cut whose piece the detector calls two digits is not the one judged
    # (``decision_rules.cut_scores``): cut a's pieces are, and it is declined.
    split_piece = _ScriptedModel(reads, pairs | {13: 0.999})
    (candidate,) = reading.split_candidates(split_piece, [line], probs_of, pair_of)
    assert candidate.cut == cut_a
    (out,), _ = reading.resolve_alternatives([line], split_piece)
    assert _ids(out) == _ids([line[0], union])
    # The detector gives the wide digit under MIN_PAIR: not even judged; the union a
    # pair: no join.
    few = _ScriptedModel(reads, pairs | {1: decision_rules.MIN_PAIR / 2, 20: 0.9})
    (out,), _ = reading.resolve_alternatives([line], few)
    assert _ids(out) == _ids(line)
    assert reading.split_candidates(few, [line], *reading.first_pass(few, [line])) == []
    # Unless the two-digit reader's odds of a pair reach MIN_ODDS (the whole's: 1.5).
    monkeypatch.setattr(decision_rules, "MIN_ODDS", 1.0)
    (candidate,) = reading.split_candidates(few, [line], *reading.first_pass(few, [line]))
    assert candidate.digit is line[0]
    assert candidate.inputs[0] == pytest.approx(_logit(decision_rules.MIN_PAIR / 2))
    # The rules say no: pieces not read confidently enough, a union not surely enough.
    unsure = reads | {13: (8, 0.98), 20: (4, 0.9)}
    (out,), _ = reading.resolve_alternatives([line], _ScriptedModel(unsure, pairs))
    assert _ids(out) == _ids(line)
    # A model without a detector reads the lines as extracted.
    (out,), _ = reading.resolve_alternatives([line], _ScriptedModel(reads, None))
    assert _ids(out) == _ids(line)
    # A wide digit no cut could be found for stays whole.
    uncut = [_digit(1, 0, splits=())]
    assert _ids(reading.resolve_alternatives([uncut], model)[0][0]) == _ids(uncut)
    # A join needs a right neighbour on the same line.
    lone = [_digit(2, 20, joined=union)]
    assert _ids(reading.resolve_alternatives([lone], model)[0][0]) == _ids(lone)


def test_a_hard_cut_is_replaced_by_a_surer_recut(monkeypatch):
    monkeypatch.setattr(decision_rules, "RECUT_MARGIN", 3.0)
    # The re-cut alone is tested: the join rule takes nothing.
    never = decision_rules.Rule((0.0,) * decision_rules.JOIN_INPUTS, -1.0)
    monkeypatch.setattr(decision_rules, "JOIN", never)
    # Digits 2 and 3 are the pieces of a hard cut; their union has one other cut.
    recut = (_digit(30, 20), _digit(31, 28))
    union, pair = _digit(20, 0), _digit(21, 20)
    line = [_digit(1, 0, joined=union), _digit(2, 20, joined=pair, recuts=(recut,)), _digit(3, 28)]
    reads = {1: (1, 0.99), 2: (3, 0.6), 3: (5, 0.7), 30: (2, 0.999), 31: (7, 0.999)}
    reads |= {20: (4, 0.5), 21: (8, 0.5)}
    pairs = {1: 0.1, 2: 0.1, 3: 0.1, 20: 0.9, 21: 0.9, 30: 0.1, 31: 0.1}
    model = _ScriptedModel(reads, pairs)
    probs_of, pair_of = reading.first_pass(model, [line])
    (candidate,) = reading.recut_candidates(model, [line], probs_of, pair_of)

    # Scored like a wide digit's cuts (decision_rules.cut_scores): the less sure piece's
    # confidence, the detector's surer call that a piece is two, the shorter piece's
    # height and the crop verifier's mean call that a piece is a whole digit.
    def whole(*pieces):
        calls = verifier.probabilities(np.stack([d.crop for d in pieces]))
        return decision_rules.CUT_WHOLE * float(np.mean(_logit(calls[:, 0])))

    assert candidate.cut == recut
    expected = _logit(0.6) - 0.3 * _logit(0.1) + 3.0 + whole(*line[1:])
    assert candidate.score == pytest.approx(expected, rel=1e-5)
    expected = _logit(0.999) - 0.3 * _logit(0.1) + 3.0 + whole(*recut)
    assert candidate.recut_score == pytest.approx(expected, rel=1e-5)
    (out,), probs = reading.resolve_alternatives([line], model)
    assert all(a.crop is b.crop for a, b in zip(out, [line[0], *recut], strict=True))
    assert list(probs.argmax(axis=1)) == [1, 2, 7]
    # The digit before the pair is a copy without its union with the piece that is gone;
    # the re-cut's left piece, a copy holding the pair's union (it may be one digit).
    assert line[0].joined is union and out[0].joined is None
    assert out[1].box == recut[0].box and out[1].joined is pair and recut[0].joined is None
    # Not surer by the margin: the hard cut stays.
    unsure = reads | {30: (2, 0.9), 31: (7, 0.9)}
    (out,), _ = reading.resolve_alternatives([line], _ScriptedModel(unsure, pairs))
    assert _ids(out) == _ids(line)
    # The re-cuts of a pair whose left piece was already replaced are not taken.
    chained = [
        _digit(2, 20, recuts=(recut,)),
        _digit(3, 28, recuts=((_digit(40, 28), _digit(41, 36)),)),
    ]
    lines, copies = reading.apply_recuts([chained], {id(chained[0]): recut, id(chained[1]): recut})
    assert all(a.crop is b.crop for a, b in zip(lines[0], recut, strict=True))
    assert copies == {id(lines[0][0]): id(recut[0])}


def test_the_crop_verifier_chooses_between_cuts_read_as_surely(monkeypatch):
    # Two cuts of a wide digit whose pieces the classifier reads as surely; the verifier
    # calls cut a's left piece a part of a digit (a stroke cut off), cut b's pieces whole.
    cut_a = (_digit(10, 0), _digit(11, 5))
    cut_b = (_digit(12, 0), _digit(13, 5))
    line = [_digit(1, 0, splits=(cut_a, cut_b))]
    reads = {1: (0, 0.99), 10: (1, 0.999), 11: (5, 0.999), 12: (3, 0.999), 13: (5, 0.999)}
    model = _ScriptedModel(reads, {1: 0.99})
    calls = {1: (0.2, 0.7, 0.1), 10: (0.05, 0.05, 0.9)}

    def verdicts(crops):
        keys = [round(float(c[0, 0]) * 1000) for c in crops]
        return np.array([calls.get(k, (0.9, 0.05, 0.05)) for k in keys]).reshape(-1, 3)

    monkeypatch.setattr(reading, "_verdicts", verdicts)
    probs_of, pair_of = reading.first_pass(model, [line])
    (candidate,) = reading.split_candidates(model, [line], probs_of, pair_of)
    assert candidate.cut == cut_b
    # The split rule sees the verifier's calls on the whole and on the chosen cut's pieces.
    expected = _logit(np.array([calls[1], (0.9, 0.05, 0.05), (0.9, 0.05, 0.05)]))
    np.testing.assert_allclose(candidate.inputs[8:17], expected.ravel(), rtol=1e-5)
    # Without the verifier's call the first of two equal cuts is the one chosen.
    calls[10] = (0.9, 0.05, 0.05)
    (candidate,) = reading.split_candidates(model, [line], probs_of, pair_of)
    assert candidate.cut == cut_a


def test_short_boxes_are_judged_by_the_drop_rule(monkeypatch):
    # A known rule: drop a box at most half its line's median height.
    monkeypatch.setattr(decision_rules, "DROP", decision_rules.Rule((-1, 0, 0), 0.5))
    fragment, small = _digit(4, 40, height=8), _digit(5, 60, height=14)
    line = [_digit(1, 0), _digit(2, 20), fragment, _digit(3, 80), small]
    reads = {1: (1, 0.9), 2: (2, 0.9), 3: (3, 0.9), 4: (7, 0.6), 5: (0, 0.8)}
    model = _ScriptedModel(reads, {})
    (out,), probs = reading.resolve_alternatives([line], model)
    assert _ids(out) == _ids([line[0], line[1], line[3], small])
    assert list(probs.argmax(axis=1)) == [1, 2, 3, 0]
    # Candidates: the boxes under SHORT (0.75) of the line's median height (20 px), with
    # their height and width for the line and their confidence.
    decision = reading.decide([line], model)
    assert _ids(decision.lines[0]) == _ids(line) and decision.splits == decision.joins == []
    probs_of = decision.probs_of
    candidates = reading.drop_candidates(decision.lines, probs_of)
    assert [c.digit for c in candidates] == [fragment, small]
    np.testing.assert_allclose(candidates[0].inputs, [0.4, 1.0, _logit(0.6)], rtol=1e-5)
    np.testing.assert_allclose(candidates[1].inputs, [0.7, 1.0, _logit(0.8)], rtol=1e-5)
    # A box alone on its line is never judged; a model without a detector drops nothing.
    assert reading.drop_candidates([[fragment]], probs_of) == []
    (out,), _ = reading.resolve_alternatives([line], _ScriptedModel(reads, None))
    assert _ids(out) == _ids(line)
