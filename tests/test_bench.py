"""The benchmark harness: tiny runs, so only shapes and sanity are checked, not speed."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import pytest
from conftest import serving_workdir

from digits_jax import bench, cli
from digits_jax import models as nets
from digits_jax.errors import DigitsJaxError

TINY = {
    "models": ("classifier", "dae"),
    "epoch": True,
    "batches": (8,),
    "seconds": 0.01,
    "conv_impls": ("unfold",),
    "matmul_dtypes": ("float32",),
    "steps_per_call": 2,
    "num_examples": 64,
    "epoch_batch": 8,
    "inference_batch": 8,
    "command": "test",
}


@pytest.fixture(scope="module")
def tiny_result():
    """A real run, kept small: one model, no epoch rows (their logic is tested with fakes)."""
    return bench.run_benchmarks(**{**TINY, "models": ("classifier",), "epoch": False})


def _sane_training_row(row: dict) -> None:
    assert row["images_per_s"] > 0 and row["ms_per_step"] > 0 and row["steps"] >= 2
    assert row["compile_s"] >= 0 and row["best_call_images_per_s"] > 0


def test_run_benchmarks_keys_and_positive_numbers(tiny_result):
    r = tiny_result
    assert set(r) >= {"command", "machine", "settings", "train", "epoch", "inference", "torch"}
    assert r["machine"]["backend"] == jax.default_backend()
    assert r["machine"]["cpu_count"] >= 1
    assert r["machine"]["auto_conv_impl"] in ("unfold", "xla")
    assert [(t["model"], t["batch"], t["conv_impl"]) for t in r["train"]] == [
        ("classifier", 8, "unfold")
    ]
    _sane_training_row(r["train"][0])
    assert r["epoch"] == []
    assert [(i["backend"], i["conv_impl"]) for i in r["inference"]] == [
        ("jax", "unfold"),
        ("numpy", None),
    ]
    assert all(i["images_per_s"] > 0 for i in r["inference"])
    assert r["read"] == {"skipped": "no trained model given"}
    assert r["torch"] == {"skipped": "not requested"}
    assert r["comparison"] == []
    json.dumps(r)  # the CLI's --json


def test_format_table_renders(tiny_result):
    text = bench.format_table(tiny_result)
    assert "training throughput" in text and "classifier" in text
    assert "time per epoch" in text and "inference" in text
    assert "numpy" in text and "read timing skipped: no trained model given" in text
    read = {"photo": "p.jpg", "model": "W", "runs": 2, "wall_s": [0.5, 0.7], "median_s": 0.6}
    text = bench.format_table({**tiny_result, "read": read})
    assert "digits-jax read p.jpg --model W" in text and "median 0.60 s" in text


def test_read_timing_runs_the_real_command(tmp_path):
    params = nets.init_params(nets.Classifier(), jax.random.PRNGKey(0))
    row = bench.time_read(serving_workdir(tmp_path, params), runs=2)
    assert row["runs"] == 2 and len(row["wall_s"]) == 2 and row["median_s"] > 0
    assert len(row["text"]) == 3  # the sample page's three lines, read by an untrained net
    with pytest.raises(DigitsJaxError, match=r"read failed.*model directory not found"):
        bench.time_read(tmp_path / "nope", runs=1)


def test_dae_training_row_is_real():
    split = bench.random_split(64)
    row = bench.time_training("dae", 8, "unfold", split, 0.01, 2)
    assert (row["model"], row["batch"], row["steps_per_call"]) == ("dae", 8, 2)
    assert row["devices"] == jax.device_count()
    assert row["matmul_dtype"] == "float32"  # the config's default
    _sane_training_row(row)
    row = bench.time_training("dae", 8, "unfold", split, 0.01, 2, matmul_dtype="bfloat16")
    assert row["matmul_dtype"] == "bfloat16"
    _sane_training_row(row)


def test_torch_skipped_when_script_missing(tmp_path):
    reason = bench.torch_unavailable(tmp_path / "nope.py")
    assert reason and "not found" in reason


def test_torch_skipped_when_torch_missing(tmp_path, monkeypatch):
    script = tmp_path / "ref.py"
    script.write_text("raise SystemExit(1)\n")
    real = bench.importlib.util.find_spec
    monkeypatch.setattr(
        bench.importlib.util, "find_spec", lambda name: None if name == "torch" else real(name)
    )
    assert "not installed" in bench.torch_unavailable(script)


@pytest.fixture
def no_timing(monkeypatch):
    """Fake JAX timings (images/s = 100 * batch), so orchestration tests compile nothing."""

    calls: list[tuple] = []

    def fake_training(model, batch, conv_impl, split, seconds, steps_per_call=20, plain=True, **kw):
        calls.append((model, batch, conv_impl, plain, kw.get("matmul_dtype")))
        # None: the config's own, float32 by default.
        matmul_dtype = bench.matmul_dtype_name(kw.get("matmul_dtype") or "float32")
        speed = 2 if matmul_dtype == "bfloat16" else 1
        return {
            "model": model,
            "batch": batch,
            "conv_impl": conv_impl,
            "matmul_dtype": matmul_dtype,
            "images_per_s": 100.0 * batch * speed,
        }

    def fake_inference(conv_impl, batch, seconds):
        return {"backend": "jax", "conv_impl": conv_impl, "batch": batch, "images_per_s": 1.0}

    def fake_numpy_inference(batch, seconds):
        return {"backend": "numpy", "conv_impl": None, "batch": batch, "images_per_s": 1.0}

    monkeypatch.setattr(bench, "time_training", fake_training)
    monkeypatch.setattr(bench, "time_inference", fake_inference)
    monkeypatch.setattr(bench, "time_numpy_inference", fake_numpy_inference)
    monkeypatch.setattr(bench, "torch_unavailable", lambda _script: None)
    return calls


def test_epoch_rows_use_the_default_configs(no_timing):
    """The classifier's default config augments: timed again; the DAE's row is reused."""
    r = bench.run_benchmarks(**{**TINY, "num_examples": 640})
    assert [(e["model"], e["examples"], e["epoch_s"]) for e in r["epoch"]] == [
        ("classifier", 640, 0.8),
        ("dae", 640, 0.8),
    ]
    assert no_timing == [
        ("classifier", 8, "unfold", True, "float32"),
        ("dae", 8, "unfold", True, "float32"),
        ("classifier", 8, "auto", False, None),
    ]
    assert "time per epoch" in bench.format_table(r)


def test_failing_reference_is_reported_not_raised(tmp_path, no_timing):
    script = tmp_path / "ref.py"
    script.write_text("import sys; sys.exit('boom')\n")
    r = bench.run_benchmarks(**{**TINY, "models": ("classifier",), "compare_torch": str(script)})
    assert "boom" in r["torch"]["skipped"]
    assert r["comparison"] == []
    assert "torch comparison skipped" in bench.format_table(r)


def test_comparison_with_a_fake_reference(tmp_path, no_timing):
    """The ratio uses each side's best batch; the fake prints the reference's JSON shape."""
    script = tmp_path / "ref.py"
    script.write_text(
        "import json, sys\n"
        "a = sys.argv\n"
        "m, b = a[a.index('--models') + 1], int(a[a.index('--batches') + 1])\n"
        "print(json.dumps({'framework': 'torch', 'version': 'fake', 'threads': 1,\n"
        "  'results': [{'model': m, 'batch': b, 'images_per_s': 10.0 * b * (1 + b % 3)}]}))\n"
    )
    r = bench.run_benchmarks(
        **{
            **TINY,
            "batches": (4, 8),
            "conv_impls": ("unfold", "xla"),
            "matmul_dtypes": ("float32", "bfloat16"),
            "compare_torch": str(script),
        }
    )
    assert r["torch"]["version"] == "fake" and len(r["torch"]["results"]) == 4
    # bfloat16 matmuls change only the unfold rows: xla is timed in float32 alone.
    assert [(t["conv_impl"], t["matmul_dtype"]) for t in r["train"][:3]] == [
        ("unfold", "float32"),
        ("unfold", "bfloat16"),
        ("xla", "float32"),
    ]
    # torch: 4 -> 80/s, 8 -> 240/s; JAX (fake): 800/s at batch 8, twice that in bfloat16.
    by = {(c["model"], c["jax_matmul_dtype"]): c for c in r["comparison"]}
    assert set(by) == {(m, d) for m in ("classifier", "dae") for d in ("float32", "bfloat16")}
    c = by["classifier", "float32"]
    assert (c["torch_batch"], c["torch_images_per_s"], c["jax_batch"]) == (8, 240.0, 8)
    assert c["ratio"] == pytest.approx(800 / 240, rel=0.01)
    assert by["classifier", "bfloat16"]["ratio"] == pytest.approx(1600 / 240, rel=0.01)
    text = bench.format_table(r)
    assert "best/torch" in text and "bf16/torch" in text and "jax unfold bf16" in text
    assert "3.33x" in text and "6.67x" in text and "bfloat16 matmuls" in text


def test_cli_arguments_parse_and_reject_bad_values(capsys):
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(["--json", "--compare-torch", "--seconds", "0.5", "--batches", "16"])
    assert args.json and args.seconds == 0.5 and args.batches == [16]
    assert args.compare_torch.endswith("torch_reference.py")
    assert parser.parse_args([]).compare_torch is None
    bad = parser.parse_args(["--seconds", "0"])
    with pytest.raises(DigitsJaxError, match="must be > 0"):
        bench.main(bad)
    with pytest.raises(DigitsJaxError, match="--cpu-devices must be >= 0"):
        bench.main(parser.parse_args(["--cpu-devices", "-1"]))
    with pytest.raises(DigitsJaxError, match="--read-runs must be > 0"):
        bench.main(parser.parse_args(["--read-runs", "0"]))
    with pytest.raises(DigitsJaxError, match="--read-model: no such folder: /nope"):
        bench.main(parser.parse_args(["--read-model", "/nope"]))
    # Through the CLI: one line on stderr, exit 2.
    assert cli.main(["bench", "--seconds", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "digits-jax: error: --seconds, --steps-per-call and --batches must be > 0"


def test_bench_does_not_import_torch():
    """torch must never become a dependency: importing the harness leaves it out."""
    code = "import sys, digits_jax.bench; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="checks the script's CPU guard")
def test_gpu_checks_script_refuses_a_cpu_only_jax(tmp_path):
    """scripts/gpu_checks.sh would run XLA's convolutions at batch 4096 for hours on a
    CPU: it must stop after recording the devices, with exit 2 and one line why."""
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHON": sys.executable, "SUITE": "5"}
    result = subprocess.run(
        ["bash", str(root / "scripts/gpu_checks.sh"), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        cwd=root,
        env=env,
        timeout=300,
    )
    assert result.returncode == 2
    assert "JAX sees no GPU here (backend cpu)" in result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["devices.txt"]
