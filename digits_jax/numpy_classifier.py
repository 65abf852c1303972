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

# Flattened parameter paths of models.Classifier() and their shapes (all float32).
PARAM_SHAPES: dict[str, tuple[int, ...]] = {
    "encoder/conv1/kernel": (5, 5, 1, 16),
    "encoder/conv1/bias": (16,),
    "encoder/conv2/kernel": (5, 5, 16, 32),
    "encoder/conv2/bias": (32,),
    "head/kernel": (512, 10),
    "head/bias": (10,),
}
FEATURES = 512


def first_mismatch(flat_params: Mapping[str, Any]) -> str | None:
    """The first parameter that is missing, unexpected or of the wrong shape or dtype
    (``flat_params`` flattened by "/", as ``export.flatten`` gives it); None if all fit."""
    for path in sorted(set(PARAM_SHAPES) | set(flat_params)):
        if path not in flat_params:
            return f"{path}: missing"
        if path not in PARAM_SHAPES:
            return f"{path}: unexpected"
        leaf = np.asarray(flat_params[path])
        if leaf.shape != PARAM_SHAPES[path]:
            return f"{path}: shape {leaf.shape} where {PARAM_SHAPES[path]} is expected"
        if leaf.dtype != np.float32:
            return f"{path}: dtype {leaf.dtype} where float32 is expected"
    return None


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
