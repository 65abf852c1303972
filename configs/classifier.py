"""Default classifier config: the original's network, trained to >= 99.15% on MNIST.

Random shifts of up to 2 pixels (on the device, in the compiled step) are the
regulariser that takes the network from about 99.05% to 99.2-99.3%.

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
    config.augment_shift = 2
    return config
