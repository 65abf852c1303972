"""A tiny config for tests and smoke runs: a few hundred examples, seconds on a CPU.

digits-jax pretrain --workdir /tmp/tiny_dae --config configs/tiny.py
digits-jax train --workdir /tmp/tiny_clf --config configs/tiny.py --init-from /tmp/tiny_dae
"""

from digits_jax.config_lib import base_config


def get_config():
    config = base_config()
    config.train_limit = 512
    config.test_limit = 256
    config.batch_size = 32
    config.num_epochs = 2
    config.steps_per_call = 8
    config.eval_batch_size = 128
    config.progress = False
    config.pair_detector_examples = 0  # tests that need the detector switch it on
    return config
