"""One real run: one epoch of the default classifier on full MNIST."""

from pathlib import Path

from digits_jax import config_lib, train

ROOT = Path(__file__).resolve().parent.parent


def test_one_epoch_reaches_98_percent(tmp_path):
    config = config_lib.get_config(
        ROOT / "configs" / "classifier.py", ["num_epochs=1", "progress=false"]
    )
    last = train.train_and_evaluate(config, tmp_path)
    assert last["test_accuracy"] >= 0.98, last
