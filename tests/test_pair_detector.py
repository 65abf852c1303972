"""The "two digits" detector: fitting, its file beside the checkpoints, fitting after training."""

import json

import jax
import numpy as np

from digits_jax import inference, models, pair_detector, train


def test_fit_logistic_folds_the_standardisation_into_the_weights():
    rng = np.random.default_rng(0)
    # Features on very different scales, the label set by two of them.
    x = rng.normal(size=(400, 5)) * np.array([1.0, 100.0, 0.01, 5.0, 1.0]) + 50.0
    y = ((x[:, 0] - 50.0) + (x[:, 1] - 50.0) / 100.0 > 0).astype(np.float64)
    kernel, bias = pair_detector.fit_logistic(x, y, steps=300)
    detector = pair_detector.PairDetector(kernel, bias, epoch=1)
    p = detector.probability(x)
    assert p.shape == (400,) and p.min() >= 0.0 and p.max() <= 1.0
    # Applied to the raw features, the folded weights separate the classes.
    assert np.mean((p > 0.5) == (y > 0.5)) > 0.95
    # The feature that carries no label gets a small weight after standardising.
    assert abs(kernel[4]) < 0.2 * abs(kernel[0])


def _random_encoder():
    params = models.init_params(models.Classifier(conv_impl="xla"), jax.random.PRNGKey(0))
    return params["encoder"]


def test_fit_save_load_round_trip_and_refusals(tmp_path):
    rng = np.random.default_rng(1)
    digits = np.zeros((20, 28, 28), np.uint8)
    for d in digits:  # bars of random width: single "digits" the fuser can pair up
        x0 = int(rng.integers(6, 14))
        d[4:24, x0 : x0 + int(rng.integers(3, 8))] = 255
    detector = pair_detector.fit(_random_encoder(), digits, examples=64, epoch=3)
    assert detector.kernel.shape == (512,) and 0.5 <= detector.train_accuracy <= 1.0
    path = pair_detector.save(detector, tmp_path)
    assert path.name == pair_detector.FILE and not list(tmp_path.glob("*.tmp"))
    loaded = pair_detector.load(tmp_path, epoch=3)
    np.testing.assert_allclose(loaded.kernel, detector.kernel)
    assert loaded.bias == detector.bias
    # Fitted on another epoch's encoder (the run trained on since): not used.
    assert pair_detector.load(tmp_path, epoch=4) is None
    assert pair_detector.load(tmp_path / "elsewhere", epoch=3) is None
    path.write_text("{not json")
    assert pair_detector.load(tmp_path, epoch=3) is None
    path.write_text(json.dumps({"epoch": 3, "bias": 0.0, "kernel": [1.0, 2.0]}))
    assert pair_detector.load(tmp_path, epoch=3) is None


def test_training_fits_the_detector_once_and_reading_loads_it(tiny_config, blob_splits, tmp_path):
    train_split, test_split = blob_splits
    tiny_config.pair_detector_examples = 64
    last = train.train_and_evaluate(tiny_config, tmp_path, train=train_split, test=test_split)
    path = tmp_path / pair_detector.FILE
    saved = json.loads(path.read_text())
    assert saved["epoch"] == last["epoch"] == tiny_config.num_epochs
    assert len(saved["kernel"]) == 512
    # Nothing left to train: the detector of that epoch is kept as it is.
    before = path.stat().st_mtime_ns
    train.train_and_evaluate(tiny_config, tmp_path, train=train_split, test=test_split)
    assert path.stat().st_mtime_ns == before
    classifier = inference.load_classifier(tmp_path)
    assert classifier.detector is not None
    crops = np.zeros((3, 28, 28), np.float32)
    p = classifier.pair_probability(crops)
    assert p.shape == (3,) and np.all((p >= 0) & (p <= 1))
    # Without the file, reading has no detector and never splits.
    path.unlink()
    assert inference.load_classifier(tmp_path).pair_probability(crops) is None
