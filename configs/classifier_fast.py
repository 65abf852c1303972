"""A quicker classifier: 15 epochs, random shifts of up to 2 pixels, no calibration.

digits-jax train --workdir workdirs/classifier_fast --config configs/classifier_fast.py
"""

from digits_jax.config_lib import base_config


def get_config():
    config = base_config()
    config.num_epochs = 15
    config.augment_shift = 2
    return config
