"""Configs: ``get_config()`` files, command-line overrides, and the shared defaults.

The config files in ``configs/`` follow the Flax examples: a module with a
``get_config()`` that returns an ``ml_collections.ConfigDict``. Every key has a
default in :func:`base_config`; a file changes only what it means to change.
``--config.KEY=VALUE`` overrides any existing key; an unknown key is an error.
"""

from __future__ import annotations

import ast
import importlib.util
import json
from pathlib import Path
from typing import Any

import ml_collections

from digits_jax.errors import DigitsJaxError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"

# Convolution implementations a config may name (see digits_jax.models).
CONV_IMPLS = ("auto", "xla", "unfold")
# Matmul operand dtypes a config may name (see digits_jax.models.resolve_matmul_dtype).
MATMUL_DTYPES = ("auto", "float32", "bfloat16")

# Keys whose change alters the shapes or structure of the saved training state.
SHAPE_KEYS = ("optimizer", "freeze_encoder")


def base_config() -> ml_collections.ConfigDict:
    """Every key a training run reads, with the defaults shared by both tasks."""
    config = ml_collections.ConfigDict()
    config.seed = 0
    # Data: 0 means the whole split; small numbers make tiny test runs.
    config.train_limit = 0
    config.test_limit = 0
    # Classifier only: the last `holdout` training digits are kept out of training and
    # used to fit the temperature that calibrates the confidences (0: no calibration).
    config.holdout = 0
    # Optimisation (the original: Adam, lr 2.5e-3 x0.8 every 5 epochs, batch 32, 30 epochs).
    config.optimizer = "adam"  # "adam" (AdamW when weight_decay > 0) or "sgd" (momentum 0.9)
    config.weight_decay = 0.0  # decoupled, on kernels only
    config.label_smoothing = 0.0  # classifier only
    config.dropout_rate = 0.0  # classifier only: on the 512 features before the dense layer
    # Augmentation on the device (classifier only), see digits_jax.augment.
    config.augment_shift = 0  # random translation by whole pixels
    config.augment_rotation = 0.0  # degrees, uniform in +-
    config.augment_scale = 0.0  # zoom uniform in [1 - s, 1 + s]
    config.augment_shear = 0.0  # degrees, uniform in +-
    config.augment_translate = 0.0  # pixels (sub-pixel), uniform in +-
    config.augment_elastic_alpha = 0.0  # elastic distortion strength, pixels (0: off)
    config.augment_elastic_sigma = 4.0  # its smoothness, pixels
    config.augment_stroke = 0.0  # probability of thickening, and of thinning, a digit
    config.learning_rate = 2.5e-3
    config.lr_schedule = "cosine"  # "cosine" (with warmup), "step" (the original's) or "constant"
    config.warmup_epochs = 0.5
    config.lr_decay_factor = 0.8  # "step": multiply by this ...
    config.lr_decay_every = 5  # ... every this many epochs
    config.batch_size = 64
    config.num_epochs = 10
    # Denoising (DAE only): input = clip(x + sigma * N(0, 1), 0, 1).
    config.noise_sigma = 0.3
    # Classifier only: keep the grafted encoder fixed (optax masking).
    config.freeze_encoder = False
    # Classifier only: after training, fit read's "two digits" detector on this many
    # synthetic fused pairs and as many single digits (0: none; read then never splits
    # a wide blob). See digits_jax.pair_detector.
    config.pair_detector_examples = 6000
    # Execution.
    config.compute_dtype = "float32"  # "bfloat16": mixed precision (parameters stay float32)
    # "bfloat16": in training steps the unfold layers' matmuls take bfloat16 operands
    # (float32 sums), all else stays float32: on CPUs with AMX 1.2-1.5x faster than the
    # phase form in float32, 1.0-1.1x than the Winograd path float32 takes since stop 30; MNIST
    # accuracy unchanged (docs/benchmarks.md, "Matmuls in bfloat16"). "auto": bfloat16 on
    # such CPUs, float32 elsewhere. float32 by default: `read`'s decision rules were
    # fitted on the float32 model `make demo` trains.
    config.matmul_dtype = "float32"
    config.data_parallel = True  # shard batches over all devices (and hosts) when several
    # On the CPU, the command line splits it into this many devices, each training its
    # share of the batch on its own core (0: one per core, at most batch_size / 16,
    # dividing batch_size; 1: one device). Set before JAX starts; see digits_jax.parallel.
    config.cpu_devices = 0
    config.conv_impl = "auto"  # "auto", "xla" or "unfold" (see digits_jax.models)
    # Training steps per compiled lax.scan call: the progress bar's granularity. 0 runs a
    # whole epoch in one call (metrics come back once per epoch).
    config.steps_per_call = 100
    config.eval_batch_size = 1000
    config.keep_checkpoints = 3
    config.progress = True
    return config


def default_config_path(task: str) -> Path:
    """The config file a command uses when ``--config`` is not given."""
    return CONFIG_DIR / ("dae.py" if task == "dae" else "classifier.py")


def load_config(path: str | Path) -> ml_collections.ConfigDict:
    """Imports a config file and returns its ``get_config()``."""
    path = Path(path)
    if not path.is_file():
        raise DigitsJaxError(f"config file not found: {path}")
    spec = importlib.util.spec_from_file_location(f"digits_jax_config_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise DigitsJaxError(f"not a Python config file: {path}")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # a broken user file: report it in one line
        raise DigitsJaxError(f"cannot load config {path}: {error}") from error
    if not hasattr(module, "get_config"):
        raise DigitsJaxError(f"config file {path} has no get_config()")
    return module.get_config()


def _parse_value(text: str, current: Any, key: str) -> Any:
    """Parses an override to the type of the value it replaces."""
    if isinstance(current, bool):
        lowered = text.lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise DigitsJaxError(f"--config.{key} expects true or false, got {text!r}")
    if isinstance(current, int | float):
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise DigitsJaxError(f"--config.{key} expects a number, got {text!r}")
        if isinstance(current, int) and not float(value).is_integer():
            raise DigitsJaxError(f"--config.{key} expects a whole number, got {text!r}")
        return type(current)(value)
    return text


def apply_overrides(config: ml_collections.ConfigDict, overrides: list[str]) -> None:
    """Applies ``KEY=VALUE`` overrides (keys may be dotted) in place."""
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise DigitsJaxError(f"bad override --config.{item}: expected --config.KEY=VALUE")
        node = config
        *parents, leaf = key.split(".")
        for part in parents:
            if part not in node or not isinstance(node[part], ml_collections.ConfigDict):
                raise DigitsJaxError(f"unknown config key: {key}")
            node = node[part]
        if leaf not in node:
            raise DigitsJaxError(f"unknown config key: {key}")
        with node.unlocked():
            node[leaf] = _parse_value(text, node[leaf], key)


def get_config(path: str | Path, overrides: list[str] | None = None) -> ml_collections.ConfigDict:
    """Loads a config file, applies overrides and checks the values."""
    config = load_config(path)
    apply_overrides(config, overrides or [])
    validate(config)
    return config


def validate(config: ml_collections.ConfigDict) -> None:
    """Rejects values that would fail later with an obscure error."""
    checks = [
        (config.batch_size > 0, "batch_size must be positive"),
        (config.num_epochs >= 0, "num_epochs must not be negative"),
        (config.learning_rate > 0, "learning_rate must be positive"),
        (config.steps_per_call >= 0, "steps_per_call must not be negative"),
        (config.eval_batch_size > 0, "eval_batch_size must be positive"),
        (config.keep_checkpoints > 0, "keep_checkpoints must be positive"),
        (config.train_limit >= 0 and config.test_limit >= 0, "limits must not be negative"),
        (config.holdout >= 0, "holdout must not be negative"),
        (config.pair_detector_examples >= 0, "pair_detector_examples must not be negative"),
        (config.noise_sigma >= 0, "noise_sigma must not be negative"),
        (config.weight_decay >= 0, "weight_decay must not be negative"),
        (0 <= config.label_smoothing < 1, "label_smoothing must be in [0, 1)"),
        (0 <= config.dropout_rate < 1, "dropout_rate must be in [0, 1)"),
        (0 <= config.augment_shift <= 8, "augment_shift must be in [0, 8]"),
        (0 <= config.augment_scale < 1, "augment_scale must be in [0, 1)"),
        (0 <= config.augment_stroke <= 0.5, "augment_stroke must be in [0, 0.5]"),
        (config.augment_elastic_sigma > 0, "augment_elastic_sigma must be positive"),
        (
            min(
                config.augment_rotation,
                config.augment_shear,
                config.augment_translate,
                config.augment_elastic_alpha,
            )
            >= 0,
            "augmentation strengths must not be negative",
        ),
        (config.optimizer in ("adam", "sgd"), "optimizer must be adam or sgd"),
        (
            config.lr_schedule in ("cosine", "step", "constant"),
            "lr_schedule must be cosine, step or constant",
        ),
        (config.conv_impl in CONV_IMPLS, f"conv_impl must be one of {', '.join(CONV_IMPLS)}"),
        (
            config.compute_dtype in ("float32", "bfloat16"),
            "compute_dtype must be float32 or bfloat16",
        ),
        (
            config.matmul_dtype in MATMUL_DTYPES,
            f"matmul_dtype must be one of {', '.join(MATMUL_DTYPES)}",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise DigitsJaxError(f"invalid config: {message}")


def to_json(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """A plain-JSON copy of a config, for checkpoints and logs."""
    return json.loads(config.to_json())


def from_json(values: dict[str, Any]) -> ml_collections.ConfigDict:
    """Rebuilds a config saved with :func:`to_json`, filling keys added since with defaults."""
    config = base_config()
    with config.unlocked():
        config.update(values)
    return config


def shape_changes(saved: dict[str, Any], current: ml_collections.ConfigDict) -> list[str]:
    """The shape-changing keys whose value differs between a checkpoint and a config."""
    now = to_json(current)
    changes = [f"{k}: {saved.get(k)!r} -> {now[k]!r}" for k in SHAPE_KEYS if saved.get(k) != now[k]]
    # Weight decay adds optimizer state when switched on, whatever its strength.
    if bool(saved.get("weight_decay", 0.0)) != bool(now["weight_decay"]):
        changes.append(
            f"weight_decay: {saved.get('weight_decay', 0.0)!r} -> {now['weight_decay']!r}"
        )
    return changes
