"""The benchmark harness: tiny runs, so only shapes and sanity are checked, not speed."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from digits_jax import bench

TINY = {
    "models": ("classifier", "dae"),
    "batches": (8,),
    "seconds": 0.01,
    "conv_impls": ("unfold",),
    "steps_per_call": 2,
    "num_examples": 64,
    "epoch_batch": 8,
    "inference_batch": 8,
    "command": "test",
}


@pytest.fixture(scope="module")
def tiny_result():
    return bench.run_benchmarks(**TINY)


def test_run_benchmarks_keys_and_positive_numbers(tiny_result):
    r = tiny_result
    assert set(r) >= {"command", "machine", "settings", "train", "epoch", "inference", "torch"}
    assert r["machine"]["backend"] == "cpu"
    assert r["machine"]["cpu_count"] >= 1
    assert r["machine"]["auto_conv_impl"] in ("unfold", "xla")
    assert {(t["model"], t["batch"], t["conv_impl"]) for t in r["train"]} == {
        ("classifier", 8, "unfold"),
        ("dae", 8, "unfold"),
    }
    for row in r["train"]:
        assert row["images_per_s"] > 0 and row["ms_per_step"] > 0 and row["steps"] >= 2
        assert row["compile_s"] >= 0
    assert [e["model"] for e in r["epoch"]] == ["classifier", "dae"]
    assert all(e["epoch_s"] > 0 and e["examples"] == 64 for e in r["epoch"])
    assert r["inference"][0]["images_per_s"] > 0
    assert r["torch"] == {"skipped": "not requested"}
    assert r["comparison"] == []
    json.dumps(r)  # the CLI's --json


def test_format_table_renders(tiny_result):
    text = bench.format_table(tiny_result)
    assert "training throughput" in text and "classifier" in text and "dae" in text
    assert "time per epoch" in text and "inference" in text


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


def test_failing_reference_is_reported_not_raised(tmp_path, monkeypatch):
    script = tmp_path / "ref.py"
    script.write_text("import sys; sys.exit('boom')\n")
    monkeypatch.setattr(bench, "torch_unavailable", lambda _script: None)
    r = bench.run_benchmarks(**{**TINY, "models": ("classifier",), "compare_torch": str(script)})
    assert "boom" in r["torch"]["skipped"]
    assert r["comparison"] == []


def test_comparison_with_a_fake_reference(tmp_path, monkeypatch):
    """The ratio uses each side's best batch; the fake prints the reference's JSON shape."""
    script = tmp_path / "ref.py"
    script.write_text(
        "import json, sys\n"
        "a = sys.argv\n"
        "m, b = a[a.index('--models') + 1], int(a[a.index('--batches') + 1])\n"
        "print(json.dumps({'framework': 'torch', 'version': 'fake', 'threads': 1,\n"
        "  'results': [{'model': m, 'batch': b, 'images_per_s': 10.0 * b}]}))\n"
    )
    monkeypatch.setattr(bench, "torch_unavailable", lambda _script: None)
    r = bench.run_benchmarks(
        **{**TINY, "models": ("classifier",), "batches": (4, 8), "compare_torch": str(script)}
    )
    assert r["torch"]["version"] == "fake" and len(r["torch"]["results"]) == 2
    (c,) = r["comparison"]
    assert c["torch_batch"] == 8 and c["torch_images_per_s"] == 80.0
    assert c["ratio"] == pytest.approx(c["jax_images_per_s"] / 80.0, rel=0.01)
    assert "best/torch" in bench.format_table(r)


def test_cli_arguments_parse_and_reject_bad_values(capsys):
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(["--json", "--compare-torch", "--seconds", "0.5", "--batches", "16"])
    assert args.json and args.seconds == 0.5 and args.batches == [16]
    assert args.compare_torch.endswith("torch_reference.py")
    assert parser.parse_args([]).compare_torch is None
    bad = parser.parse_args(["--seconds", "0"])
    assert bench.main(bad) == 2
    assert "must be > 0" in capsys.readouterr().err


def test_bench_does_not_import_torch():
    """torch must never become a dependency: importing the harness leaves it out."""
    code = "import sys, digits_jax.bench; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
