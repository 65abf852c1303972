"""The time-to-accuracy race: the default network, no augmentation, large batches, 8 epochs.

Chosen to reach 99.0% MNIST test accuracy in as few training seconds as possible on a
GPU (``digits_jax.time_to_accuracy``); not for reading photos (use classifier.py).

    digits-jax bench --models --to-accuracy 0.99 --race-dtypes float32 bfloat16
"""

from digits_jax.config_lib import base_config


def get_config():
    config = base_config()
    config.batch_size = 256
    config.learning_rate = 5e-3
    config.lr_schedule = "cosine"
    config.warmup_epochs = 0.5
    config.num_epochs = 8
    config.pair_detector_examples = 0
    config.steps_per_call = 0
    return config
