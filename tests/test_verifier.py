"""The crop verifier: labels, fitting, the shipped parameters and their calls on a new page."""

import json

import numpy as np
import pytest

from digits_jax import data, verifier
from digits_jax.errors import DigitsJaxError
from digits_jax.extraction import extract_digits
from digits_jax.synthetic_pages import generate_page


def test_labels_whole_two_and_part():
    truth = [(0, 0, 10, 20), (12, 0, 10, 20)]
    boxes = [
        (1, 0, 10, 20),  # a digit's box, a pixel off
        (0, 0, 22, 20),  # both digits
        (0, 0, 5, 20),  # half a digit: IoU 0.5, still whole
        (0, 0, 4, 20),  # less: a part
        (50, 50, 3, 3),  # a speck nowhere near
    ]
    np.testing.assert_array_equal(verifier.labels_of(boxes, truth), [0, 1, 0, 2, 2])
    assert verifier.labels_of([], truth).shape == (0,)
    np.testing.assert_array_equal(verifier.labels_of([(0, 0, 3, 3)], []), [2])


def _bars(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Learnable stand-ins: a tall bar ("whole"), two tall bars ("two"), a stub ("part")."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n).astype(np.int32)
    crops = (rng.random((n, 28, 28)) * 40).astype(np.uint8)
    for img, k in zip(crops, labels, strict=True):
        x = rng.integers(4, 10)
        if k == 0:
            img[4:24, x : x + 4] = 255
        elif k == 1:
            img[4:24, x : x + 3] = img[4:24, x + 10 : x + 13] = 255
        else:
            img[16:24, x : x + 4] = 255
    return crops, labels


def test_fit_learns_and_the_parameters_round_trip(tmp_path):
    crops, labels = _bars(768, 0)
    losses = []
    params = verifier.fit(crops, labels, epochs=3, progress=lambda e, loss: losses.append(loss))
    assert len(losses) == 3 and losses[-1] < losses[0]
    test, truth = _bars(256, 1)
    probs = verifier.probabilities(test.astype(np.float32) / 255, params)
    assert probs.shape == (256, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert np.mean(probs.argmax(axis=1) == truth) >= 0.9
    assert verifier.probabilities(np.zeros((0, 28, 28)), params).shape == (0, 3)
    path = verifier.save(params, tmp_path / "v.npz")
    loaded = verifier.load(path)
    np.testing.assert_array_equal(loaded["head"]["kernel"], params["head"]["kernel"])
    with pytest.raises(DigitsJaxError, match="fewer than one batch"):
        verifier.fit(crops[:10], labels[:10])


def test_load_refuses_what_is_not_a_verifier(tmp_path):
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    with pytest.raises(DigitsJaxError, match="cannot load the crop verifier"):
        verifier.load(empty)
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, **{"head/kernel": np.zeros((512, 10), np.float32)})
    with pytest.raises(DigitsJaxError, match="is not a crop verifier"):
        verifier.load(wrong)


def test_the_shipped_verifier_on_a_page_of_unseen_digits():
    """Crops extraction offers on pages of MNIST *test* digits (the verifier trained on
    pages of training digits): most are called what the truth says, and a whole digit
    looks whole far more often than a part does."""
    images, labels = data.load_split("test")
    rng = np.random.default_rng(0)
    offered, truth_labels = [], []
    for seed in (21, 22):
        page = generate_page(np.random.default_rng(seed), images, labels, difficulty=0.5)
        items = verifier.offered(extract_digits(page.image), rng, cuts=6)
        truth = [t.box for line in page.lines for t in line]
        offered += items
        truth_labels.append(verifier.labels_of([d.box for d in items], truth))
    y = np.concatenate(truth_labels)
    probs = verifier.probabilities(np.stack([d.crop for d in offered]))
    assert len(y) > 200 and {0, 2} <= set(y.tolist())
    assert np.mean(probs.argmax(axis=1) == y) >= 0.75
    whole = probs[:, 0]
    assert np.median(whole[y == 0]) > 0.7 > 0.3 > np.median(whole[y == 2])


def test_train_verifier_script(reader_model, capsys, import_script, tmp_path):
    script = import_script("train_verifier")
    workdir, _ = reader_model
    out = tmp_path / "verifier.npz"
    argv = ["--model", str(workdir), "--pages", "6", "--workers", "1", "--epochs", "1"]
    assert script.main([*argv, "--out", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["out"] == str(out) and report["pages"] == 6
    assert sum(report["crops"].values()) > 100 and 0.0 <= report["held_out_accuracy"] <= 1.0
    assert verifier.load(out)["head"]["kernel"].shape == (512, 3)
    assert script.main(["--model", str(workdir / "missing"), "--pages", "2"]) == 2
    with pytest.raises(SystemExit):  # argparse's one-line usage error, exit 2
        script.main(["--pages", "1"])
