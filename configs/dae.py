"""Default DAE pretraining config (denoising, sigma 0.3).

digits-jax pretrain --workdir workdirs/dae --config configs/dae.py
"""

from digits_jax.config_lib import base_config


def get_config():
    config = base_config()
    config.learning_rate = 2.5e-3
    config.lr_schedule = "cosine"
    config.batch_size = 64
    config.num_epochs = 5
    config.noise_sigma = 0.3
    return config
