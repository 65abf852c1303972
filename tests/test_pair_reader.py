"""The two-digit reader: loading, its odds on stand-ins it learns, the shipped reader on
fused pairs of unseen digits, and its training script."""

import json

import numpy as np
import pytest

from digits_jax import data, fused_pairs, pair_reader, verifier
from digits_jax.errors import DigitsJaxError
from digits_jax.mnist_format import to_mnist


def _bars(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Learnable stand-ins: one tall bar read as a 1, two bars side by side as the pair 11."""
    rng = np.random.default_rng(seed)
    two = rng.random(n) < 0.5
    crops = (rng.random((n, 28, 28)) * 40).astype(np.uint8)
    for img, k in zip(crops, two, strict=True):
        x = rng.integers(4, 10)
        img[4:24, x : x + 3] = 255
        if k:
            img[4:24, x + 10 : x + 13] = 255
    return crops, np.where(two, fused_pairs.pair_class(1, 1), 1).astype(np.int32)


def test_pair_odds_of_a_reader_fitted_on_stand_ins(tmp_path):
    crops, classes = _bars(768, 0)
    params = verifier.fit(crops, classes, epochs=8, classes=pair_reader.CLASSES)
    test, truth = _bars(256, 1)
    probs = pair_reader.probabilities(test.astype(np.float32) / 255, params)
    assert probs.shape == (256, pair_reader.CLASSES)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    odds = pair_reader.pair_odds(test.astype(np.float32) / 255, params)
    assert np.mean((odds > 0) == (truth >= pair_reader.SINGLES)) >= 0.9
    assert pair_reader.pair_odds(np.zeros((0, 28, 28)), params).shape == (0,)
    path = verifier.save(params, tmp_path / "reader.npz")
    assert pair_reader.load(path)["head"]["kernel"].shape == (512, pair_reader.CLASSES)


def test_load_refuses_what_is_not_a_two_digit_reader(tmp_path):
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    with pytest.raises(DigitsJaxError, match="cannot load the two-digit reader"):
        pair_reader.load(empty)
    # The crop verifier's file: the same network with three outputs.
    with pytest.raises(DigitsJaxError, match="is not a two-digit reader: head/bias: shape"):
        pair_reader.load(verifier.ASSET)


def test_the_shipped_reader_on_fused_pairs_of_unseen_digits():
    """Pairs of MNIST *test* digits fused as on a page (the reader trained on training
    digits): nearly all are told from single digits, most are read digit for digit."""
    images, labels = data.load_split("test")
    rng = np.random.default_rng(0)
    picks = rng.integers(len(images), size=(300, 2))
    pairs = np.stack([to_mnist(fused_pairs.random_fuse(rng, *images[p])) for p in picks])
    singles = np.stack([to_mnist(d) for d in images[:300]])
    pair_odds = pair_reader.pair_odds(pairs)
    assert np.mean(pair_odds > 0) >= 0.95 and np.mean(pair_reader.pair_odds(singles) < 0) >= 0.97
    read = pair_reader.probabilities(pairs).argmax(axis=1)
    assert np.mean(read == fused_pairs.pair_class(labels[picks[:, 0]], labels[picks[:, 1]])) >= 0.8


def test_train_pair_reader_script(reader_model, capsys, import_script, tmp_path):
    script = import_script("train_pair_reader")
    workdir, _ = reader_model
    out = tmp_path / "reader.npz"
    argv = ["--model", str(workdir), "--pairs", "300", "--digits", "300", "--held-out", "50"]
    assert script.main([*argv, "--epochs", "1", "--out", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["out"] == str(out) and report["pairs"] == 300 and report["singles"] == 300
    for key in ("held_out_accuracy", "pairs_read_right", "pair_or_single_right"):
        assert 0.0 <= report[key] <= 1.0
    assert pair_reader.load(out)["head"]["kernel"].shape == (512, pair_reader.CLASSES)
    assert script.main(["--model", str(workdir / "missing"), "--pairs", "10"]) == 2
    with pytest.raises(SystemExit):  # argparse's one-line usage error, exit 2
        script.main(["--pairs", "0"])
