"""Default classifier config: the original's network, augmented on the device, calibrated.

Random affine transforms, a mild elastic distortion and stroke-width changes
(inside the compiled step) make the network generalise to handwriting MNIST
never saw; decoupled weight decay (AdamW, 0.05 on the kernels) was chosen on the
held-out accuracy; the last 5,000 training digits are held out to fit the
temperature that calibrates its confidences and to compare configs.

    digits-jax train --workdir workdirs/classifier_scratch --config configs/classifier.py
    digits-jax train --workdir workdirs/classifier --init-from workdirs/dae
"""

from digits_jax.config_lib import base_config


def get_config():
    config = base_config()
    config.learning_rate = 2.5e-3
    config.lr_schedule = "cosine"
    config.weight_decay = 0.05
    config.batch_size = 64
    config.num_epochs = 30
    config.holdout = 5000
    config.augment_rotation = 8.0
    config.augment_scale = 0.08
    config.augment_shear = 6.0
    config.augment_translate = 2.0
    config.augment_elastic_alpha = 1.0
    config.augment_stroke = 0.1
    return config
