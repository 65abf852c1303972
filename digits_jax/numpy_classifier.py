"""The trained classifier's forward pass in NumPy: reading a photo without JAX.

Reading one photo applies the network to a few dozen 28x28 crops, a few milliseconds of
arithmetic, while importing JAX and flax takes 1-1.6 s of a 2-core machine's start-up.
``read`` and ``classify`` therefore run the serving copy's parameters (``export``) through
this twin of ``models.Classifier`` (inference only: no dropout, no TTA views). The tests
hold it equal to the Flax module to float32 tolerance, features included, and its
parameter table equal to the module's, so the two cannot drift apart unnoticed.
Training, evaluation, TTA views and accelerators use JAX (``inference``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from digits_jax import trees

# The parameters of models.Classifier(), as ``trees.first_mismatch`` checks them.
_F32 = np.dtype(np.float32)
PARAM_SPECS: dict[str, Any] = trees.unflatten(
    {
        "encoder/conv1/kernel": trees.Spec((5, 5, 1, 16), _F32),
        "encoder/conv1/bias": trees.Spec((16,), _F32),
        "encoder/conv2/kernel": trees.Spec((5, 5, 16, 32), _F32),
        "encoder/conv2/bias": trees.Spec((32,), _F32),
        "head/kernel": trees.Spec((512, 10), _F32),
        "head/bias": trees.Spec((10,), _F32),
    }
)
FEATURES = 512


def conv_pool_tanh(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """tanh(max_pool2(conv_valid(x) + bias)) for (N, H, W, C) images and an HWIO kernel:
    the patches unfolded by a strided view, one matmul, a reshape-max over 2x2 cells."""
    n, h, w, c = x.shape
    kh, kw, _, features = kernel.shape
    oh, ow = h - kh + 1, w - kw + 1
    patches = sliding_window_view(x, (kh, kw), axis=(1, 2))  # (N, oh, ow, C, kh, kw)
    patches = patches.transpose(0, 1, 2, 4, 5, 3).reshape(n * oh * ow, kh * kw * c)
    y = (patches @ kernel.reshape(kh * kw * c, features)).reshape(
        n, oh // 2, 2, ow // 2, 2, features
    )
    return np.tanh(y.max(axis=(2, 4)) + bias)


def outputs(params: Mapping[str, Any], images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Logits and encoder features side by side, (N, 10 + 512), for float images (N, 28, 28)
    or (N, 28, 28, 1) in [0, 1]: what ``models.Classifier(features=True)`` returns."""
    images = np.asarray(images, np.float32).reshape(-1, 28, 28, 1)
    enc, head = params["encoder"], params["head"]
    out = []
    for start in range(0, len(images), batch_size):  # bounds the unfolded patches' memory
        z = conv_pool_tanh(images[start : start + batch_size], **enc["conv1"])
        z = conv_pool_tanh(z, **enc["conv2"]).reshape(len(z), FEATURES)
        out.append(np.concatenate([z @ head["kernel"] + head["bias"], z], axis=1))
    return np.concatenate(out) if out else np.zeros((0, 10 + FEATURES), np.float32)
