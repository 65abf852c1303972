"""The original's training without augmentation (15 epochs): the unaugmented baseline.

digits-jax train --workdir workdirs/classifier_plain --config configs/classifier_plain.py
"""

from digits_jax.config_lib import base_config


def get_config():
    config = base_config()
    config.num_epochs = 15
    return config
