"""Default classifier config: the original's network, trained to >= 99.15% on MNIST.

    digits-jax train --workdir workdirs/classifier --config configs/classifier.py
    digits-jax train --workdir workdirs/classifier_pre --init-from workdirs/dae
"""

from digits_jax.config_lib import base_config


def get_config():
    config = base_config()
    config.learning_rate = 2.5e-3
    config.lr_schedule = "cosine"
    config.batch_size = 64
    config.num_epochs = 15
    return config
