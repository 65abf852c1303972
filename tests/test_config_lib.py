from pathlib import Path

import pytest

from digits_jax import config_lib
from digits_jax.errors import DigitsJaxError

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", ["classifier.py", "dae.py", "tiny.py"])
def test_config_files_load_and_validate(name):
    config = config_lib.get_config(ROOT / "configs" / name)
    assert config.num_epochs > 0
    assert set(config_lib.base_config().keys()) == set(config.keys())


def test_overrides_are_typed(tiny_config):
    config_lib.apply_overrides(
        tiny_config,
        ["num_epochs=5", "learning_rate=1e-2", "progress=false", "lr_schedule=step"],
    )
    assert tiny_config.num_epochs == 5 and isinstance(tiny_config.num_epochs, int)
    assert tiny_config.learning_rate == 0.01
    assert tiny_config.progress is False
    assert tiny_config.lr_schedule == "step"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("nonsense=1", "unknown config key: nonsense"),
        ("num_epochs=two", "expects a number"),
        ("num_epochs=2.5", "whole number"),
        ("progress=maybe", "true or false"),
        ("num_epochs", "expected --config.KEY=VALUE"),
    ],
)
def test_bad_overrides(tiny_config, override, message):
    with pytest.raises(DigitsJaxError, match=message):
        config_lib.apply_overrides(tiny_config, [override])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("batch_size=0", "batch_size must be positive"),
        ("matmul_dtype=float16", "matmul_dtype must be one of auto, float32, bfloat16"),
    ],
)
def test_invalid_values_are_refused(override, message):
    with pytest.raises(DigitsJaxError, match=message):
        config_lib.get_config(ROOT / "configs" / "tiny.py", [override])


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(DigitsJaxError, match="not found"):
        config_lib.load_config(tmp_path / "nope.py")
    broken = tmp_path / "broken.py"
    broken.write_text("def get_config(:\n")
    with pytest.raises(DigitsJaxError, match="cannot load config"):
        config_lib.load_config(broken)
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    with pytest.raises(DigitsJaxError, match="no get_config"):
        config_lib.load_config(empty)


def test_json_round_trip_and_shape_changes(tiny_config):
    saved = config_lib.to_json(tiny_config)
    assert config_lib.from_json(saved).to_dict() == tiny_config.to_dict()
    assert config_lib.shape_changes(saved, tiny_config) == []
    tiny_config.freeze_encoder = True
    assert config_lib.shape_changes(saved, tiny_config) == ["freeze_encoder: False -> True"]
    tiny_config.freeze_encoder = False
    tiny_config.weight_decay = 0.05  # switching decay on adds optimizer state
    assert config_lib.shape_changes(saved, tiny_config) == ["weight_decay: 0.0 -> 0.05"]
    saved["weight_decay"] = 0.01  # another strength keeps the same state
    assert config_lib.shape_changes(saved, tiny_config) == []
