"""Data parallelism on 8 forced CPU devices: sharded training matches one device."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from digits_jax import export, parallel
from digits_jax.errors import DigitsJaxError

ROOT = Path(__file__).resolve().parent.parent
# Float32 matmuls in the runs compared here, whatever the default: with bfloat16 operands
# (matmul_dtype "bfloat16", or "auto" on CPUs with AMX), a value the other summation order
# moves by one float32 ulp can round to the other bfloat16 neighbour, and two correct runs
# drift apart by more than the float tolerance these tests hold the partitioning to
# (conv1's bias: 6.5 times it, seen).
TRAIN_TINY = [
    sys.executable,
    "-m",
    "digits_jax.cli",
    "train",
    "--config",
    str(ROOT / "configs/tiny.py"),
    "--config.matmul_dtype",
    "float32",
]


def _cpu_env(drop_flags: bool = False, **extra: str) -> dict[str, str]:
    """The environment for a fresh Python on the host's CPU devices, on a GPU machine too:
    these tests are about CPU devices and processes, not the accelerator."""
    env = {k: v for k, v in os.environ.items() if not (drop_flags and k == "XLA_FLAGS")}
    return {**env, "JAX_PLATFORMS": "cpu", **extra}


def _run(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Runs a command in a fresh Python (JAX's devices are fixed once it starts); it must pass."""
    env = env or _cpu_env()
    result = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


SCRIPT = """
import json, sys
import jax
sys.path.insert(0, "tests")
from conftest import _blob_digits
from digits_jax import config_lib, input_pipeline, parallel, train
assert jax.device_count() == 8, jax.devices()
out = {}
for name, dp in (("single", False), ("sharded", True)):
    overrides = [f"data_parallel={dp}", "holdout=64", "matmul_dtype=float32"]
    config = config_lib.get_config("configs/tiny.py", overrides)
    tr = input_pipeline.device_split(*_blob_digits(512, 0))
    te = input_pipeline.device_split(*_blob_digits(128, 1))
    last = train.train_and_evaluate(config, sys.argv[1] + "/" + name, train=tr, test=te)
    out[name] = last
    out[name + "_mesh"] = 0 if parallel.data_mesh(dp) is None else parallel.data_mesh(dp).size
import jax.numpy as jnp
from digits_jax import models
images, labels = _blob_digits(32, 0)
x = jnp.asarray(images, jnp.float32)[..., None] / 255
model = models.Classifier(conv_impl="unfold")
params = model.init(jax.random.PRNGKey(1), x)
def loss(p, x):
    return -jnp.mean(jax.nn.log_softmax(model.apply(p, x, train=True))[jnp.arange(32), labels])
grad = jax.jit(jax.grad(loss))
sharded_x = jax.device_put(x, parallel.batch_sharding(parallel.data_mesh(True)))
pairs = zip(jax.tree.leaves(grad(params, x)), jax.tree.leaves(grad(params, sharded_x)))
out["grad_diff"] = max(float(jnp.abs(a - b).max() / jnp.abs(a).max()) for a, b in pairs)
mesh = parallel.data_mesh(True)
def loss_sum(p, x, y):
    return -jnp.sum(jax.nn.log_softmax(model.apply(p, x, train=True))[jnp.arange(len(y)), y])
def split_grad(p, x, y):
    with jax.sharding.use_abstract_mesh(mesh.abstract_mesh):
        return parallel.mean_value_and_grad(loss_sum, p, (x, y), 32)
split = jax.jit(split_grad)
sharded_y = jax.device_put(jnp.asarray(labels), parallel.batch_sharding(mesh))
value, grads = split(params, sharded_x, sharded_y)
pairs = zip(jax.tree.leaves(grad(params, x)), jax.tree.leaves(grads), strict=True)
out["split_grad_diff"] = max(float(jnp.abs(a - b).max() / jnp.abs(a).max()) for a, b in pairs)
out["split_loss"] = [float(value), float(loss(params, x))]
hlo = split.lower(params, sharded_x, sharded_y).compile().as_text().splitlines()
out["all_reduces"] = [line.split("=")[1].split()[0] for line in hlo if " all-reduce(" in line]
from digits_jax import bench
out["bench_devices"] = [
    bench.time_training("classifier", b, "unfold", bench.random_split(64), 0.01, 2)["devices"]
    for b in (16, 12)
]
print(json.dumps(out))
"""


def test_sharded_training_matches_single_device(tmp_path):
    env = _cpu_env(XLA_FLAGS="--xla_force_host_platform_device_count=8")
    result = _run([sys.executable, "-c", SCRIPT, str(tmp_path)], env)
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["single_mesh"] == 0 and out["sharded_mesh"] == 8
    assert "data parallel over 8 devices" in result.stderr
    assert out["bench_devices"] == [8, 1]  # the bench shards a batch the devices divide
    # One step's gradient: the partitioned step computes what one device does, to
    # float32 rounding (Winograd's conv2 sums in another order: a few 1e-6 of the scale).
    assert out["grad_diff"] < 2e-5
    # parallel.mean_value_and_grad: the same gradient and mean, through one all-reduce of
    # one flat buffer (jit's own partitioning all-reduces a tuple, one operand at a time).
    assert out["split_grad_diff"] < 2e-5
    assert out["split_loss"][0] == pytest.approx(out["split_loss"][1], rel=1e-6)
    assert len(out["all_reduces"]) == 1 and out["all_reduces"][0].startswith("f32[")
    # Two epochs of Adam: Adam's normalised steps turn rounding into steps of the
    # learning rate, so two correct runs drift (3e-4 in the training loss, seen).
    for key in ("train_loss", "test_loss", "test_accuracy", "temperature"):
        assert out["sharded"][key] == pytest.approx(out["single"][key], rel=1e-3, abs=1e-5), key


def test_cpu_device_count_is_one_per_core_within_the_batch():
    assert parallel.cpu_device_count(0, 64, cores=2) == 2
    assert parallel.cpu_device_count(0, 64, cores=16) == 4  # at least 16 images each
    assert parallel.cpu_device_count(0, 24, cores=2) == 1
    assert parallel.cpu_device_count(0, 48, cores=4) == 3
    assert parallel.cpu_device_count(0, 100, cores=8) == 5  # must divide the batch
    assert parallel.cpu_device_count(3, 64, cores=2) == 3  # asked for: taken as given
    assert 1 <= parallel.cpu_device_count(0, 64) <= 4
    with pytest.raises(DigitsJaxError, match="cpu_devices must be >= 0"):
        parallel.cpu_device_count(-1, 64)


def test_split_cpu_leaves_a_running_backend_and_forced_flags_alone(monkeypatch):
    import jax

    jax.numpy.zeros(1).block_until_ready()  # the backend is running now
    assert parallel.split_cpu(2) is False
    assert parallel.split_cpu(1) is False
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
    assert parallel.split_cpu(2) is False


def test_cli_splits_the_cpu_and_resumes_on_another_device_count(tmp_path):
    """Checkpoints saved over 2 CPU devices resume on 1 (Orbax's fallback sharding)."""
    env = _cpu_env(drop_flags=True)
    runs = []
    for epochs, devices in ((1, 2), (2, 1)):
        flags = ["--config.num_epochs", str(epochs), "--config.cpu_devices", str(devices)]
        runs.append(_run([*TRAIN_TINY, "--workdir", str(tmp_path / "clf"), *flags], env).stderr)
    assert "data parallel over 2 devices (1 processes)" in runs[0]
    assert "data parallel" not in runs[1] and "resuming" in runs[1]
    rows = [json.loads(x) for x in (tmp_path / "clf" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]


def test_batch_must_divide_over_devices():
    class FakeMesh:
        size = 8

    parallel.check_divisible(64, FakeMesh())
    parallel.check_divisible(63, None)
    with pytest.raises(DigitsJaxError, match="multiple of the 8 devices"):
        parallel.check_divisible(60, FakeMesh())


def test_distributed_needs_process_count_and_id(monkeypatch):
    monkeypatch.delenv("DIGITS_JAX_COORDINATOR", raising=False)
    assert parallel.initialize_distributed() is False
    monkeypatch.setenv("DIGITS_JAX_COORDINATOR", "localhost:12345")
    monkeypatch.delenv("DIGITS_JAX_NUM_PROCESSES", raising=False)
    with pytest.raises(DigitsJaxError, match="number of processes"):
        parallel.initialize_distributed()
    with pytest.raises(DigitsJaxError, match="not in"):
        parallel.initialize_distributed(num_processes=2, process_id=2)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_processes_on_localhost_match_one(tmp_path):
    """`digits-jax train` as 2 processes (jax.distributed, gloo) gives the 1-process result."""
    _run([*TRAIN_TINY, "--workdir", str(tmp_path / "one"), "--config.cpu_devices", "1"])
    port = _free_port()
    procs = [
        subprocess.Popen(
            [
                *TRAIN_TINY,
                "--workdir",
                str(tmp_path / "two"),
                "--coordinator",
                f"localhost:{port}",
                "--num-processes",
                "2",
                "--process-id",
                str(i),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=_cpu_env(),
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs[0][1][-2000:] + outs[1][1][-2000:]
    assert "data parallel over 2 devices (2 processes)" in outs[0][1]
    one = [json.loads(x) for x in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()]
    two = [json.loads(x) for x in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert len(one) == len(two) == 2
    for a, b in zip(one, two, strict=True):
        assert b["test_loss"] == pytest.approx(a["test_loss"], rel=1e-4)
        assert b["test_accuracy"] == pytest.approx(a["test_accuracy"], abs=1e-6)
    # Process 0 wrote the serving copy from its own replica, without opening the checkpoints
    # alone (that waited on the other process and failed the shutdown barrier).
    (p_one, meta_one), (p_two, meta_two) = (export.load(tmp_path / r) for r in ("one", "two"))
    assert meta_one["epoch"] == meta_two["epoch"] == 2
    # Elementwise, Adam's normalised steps can magnify the all-reduce's other summation
    # order in a weight whose gradient is near zero (5e-5 on one of 400 seen on an AVX-512
    # CPU); tensor by tensor, the two runs must agree to float tolerance.
    for key, value in export.flatten(p_one).items():
        diff = np.linalg.norm(export.flatten(p_two)[key] - value)
        assert diff <= 1e-4 * np.linalg.norm(value), (key, diff)
