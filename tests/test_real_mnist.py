"""The real run: one epoch of the default classifier on full MNIST."""


def test_one_epoch_reaches_98_percent(real_model):
    _, last = real_model
    assert last["test_accuracy"] >= 0.98, last
