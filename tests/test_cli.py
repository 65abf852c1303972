"""The CLI end to end on real MNIST with the tiny config, and its one-line errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from digits_jax import cli

ROOT = Path(__file__).resolve().parent.parent
TINY = str(ROOT / "configs" / "tiny.py")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "digits_jax.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )


def _one_line_error(capsys, code: int, match: str) -> None:
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert err.startswith("digits-jax: error:"), err
    assert "\n" not in err and "Traceback" not in err
    assert match in err


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """Pretrain, then train from the grafted encoder, through the real console entry point."""
    root = tmp_path_factory.mktemp("cli")
    dae = _run("pretrain", "--workdir", str(root / "dae"), "--config", TINY)
    assert dae.returncode == 0, dae.stderr
    clf = _run(
        "train",
        "--workdir",
        str(root / "clf"),
        "--config",
        TINY,
        "--init-from",
        str(root / "dae"),
        "--config.num_epochs",
        "3",
    )
    assert clf.returncode == 0, clf.stderr
    return root, dae, clf


def test_pretrain_and_train(tiny_runs):
    root, dae, clf = tiny_runs
    assert "DAE test reconstruction MSE" in dae.stdout
    assert (root / "dae" / "reconstructions.png").exists()
    assert "test accuracy:" in clf.stdout
    rows = [json.loads(x) for x in (root / "clf" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert {"train_loss", "test_loss", "test_accuracy"} <= set(rows[-1])


def test_evaluate_json(tiny_runs, capsys):
    root, _, _ = tiny_runs
    assert cli.main(["evaluate", "--workdir", str(root / "clf"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["num_examples"] == 10000
    assert 0.5 < result["test_accuracy"] <= 1.0  # 3 tiny epochs on 512 digits
    assert result["test_loss"] > 0 and result["epochs"] == [3]
    assert 0 <= result["test_ece"] < 1 and result["models"] == 1


def test_rerun_resumes_instead_of_retraining(tiny_runs):
    root, _, _ = tiny_runs
    again = _run("train", "--workdir", str(root / "clf"), "--config", TINY, "--config.num_epochs=3")
    assert again.returncode == 0, again.stderr
    assert "already holds epoch 3" in again.stderr


def test_errors_are_one_line(tiny_runs, tmp_path, capsys):
    root, _, _ = tiny_runs
    cases = [
        (
            ["train", "--workdir", str(tmp_path / "x"), "--config", TINY, "--config.bogus=1"],
            "unknown config key: bogus",
        ),
        (
            ["train", "--workdir", str(tmp_path / "x"), "--config", str(tmp_path / "no.py")],
            "config file not found",
        ),
        (
            [
                "train",
                "--workdir",
                str(tmp_path / "x"),
                "--config",
                TINY,
                "--init-from",
                str(tmp_path / "missing"),
            ],
            "no checkpoints",
        ),
        (
            [
                "train",
                "--workdir",
                str(tmp_path / "x"),
                "--config",
                TINY,
                "--init-from",
                str(root / "clf"),
            ],
            "not a DAE",
        ),
        (["evaluate", "--workdir", str(tmp_path / "missing")], "not found"),
        (["evaluate", "--workdir", str(root / "dae")], "not a classifier"),
        (["data", "--mnist-dir", str(tmp_path / "nowhere")], "nowhere"),
    ]
    for argv, match in cases:
        _one_line_error(capsys, cli.main(argv), match)
    assert not (tmp_path / "x" / "checkpoints").exists()


def test_console_script_error_has_no_traceback(tmp_path):
    result = _run("evaluate", "--workdir", str(tmp_path / "missing"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_progress_bar_only_over_several_inputs_on_a_terminal():
    assert cli._progress(["a.jpg"], "photo") == ["a.jpg"]
    bar = cli._progress(["a.jpg", "b.jpg"], "photo")
    assert list(bar) == ["a.jpg", "b.jpg"]
    assert bar.disable  # pytest's captured stderr is not a terminal: no bar in logs


def test_a_reader_that_goes_away_is_not_an_error():
    """``digits-jax extract PHOTO | head -0``: a quiet stop with SIGPIPE's status."""
    sample = ROOT / "digits_jax" / "assets" / "sample_page.jpg"
    proc = subprocess.Popen(
        [sys.executable, "-m", "digits_jax.cli", "extract", str(sample)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    proc.stdout.close()  # before the command has written anything
    err = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(timeout=300) == cli.EXIT_BROKEN_PIPE
    assert err == b""
