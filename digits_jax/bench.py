"""Speed benchmarks: training and inference throughput, read wall time, against PyTorch.

Training is timed through the project's own compiled path (``training_loop._train_chunk``:
one ``lax.scan`` over ``steps_per_call`` real train steps, donated state, uint8 images
gathered and converted on the device), because that is how an epoch really runs;
compile time is measured apart and excluded. The data are random uint8 images, so
no MNIST download is needed and the numbers do not depend on it.

The PyTorch comparison runs the seed project's reference script (``--compare-torch``)
as a subprocess of the same run, interleaved with the JAX measurements batch by batch,
because the machines are shared and noisy: only ratios from one run mean anything.
Nothing here imports torch.

    digits-jax bench                      # table
    digits-jax bench --json --compare-torch --seconds 5
    digits-jax bench --models --to-accuracy 0.99   # only the race (time_to_accuracy)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from digits_jax import (
    config_lib,
    export,
    inference,
    input_pipeline,
    mnist_files,
    numpy_classifier,
    parallel,
    plots,
    pretrain,
    time_to_accuracy,
    train,
    training_loop,
)
from digits_jax import models as nets
from digits_jax.errors import DigitsJaxError

MODELS = ("classifier", "dae")
EPOCH_EXAMPLES = 60_000  # MNIST's training split
DEFAULT_BATCH = 64  # both default configs
INFERENCE_BATCH = 512  # inference.LoadedClassifier.logits' batch
SAMPLE_PAGE = Path(__file__).resolve().parent / "assets" / "sample_page.jpg"
DEFAULT_READ_MODEL = Path("workdirs/classifier")  # what make demo trains
DEFAULT_TORCH_SCRIPT = Path(__file__).resolve().parent.parent / ".." / "shared" / "bench"
DEFAULT_TORCH_SCRIPT = (DEFAULT_TORCH_SCRIPT / "torch_reference.py").resolve()


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on: they mean nothing without it."""
    import flax
    import jaxlib

    device = jax.devices()[0]
    cpu_model = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu_count": os.cpu_count(),
        "usable_cpus": parallel.usable_cores(),
        "cpu_model": cpu_model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "flax": flax.__version__,
        "backend": jax.default_backend(),
        "device_kind": device.device_kind,
        "device_count": jax.device_count(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "auto_conv_impl": nets.resolve_conv_impl("auto"),
        "auto_matmul_dtype": matmul_dtype_name("auto"),
    }


def matmul_dtype_name(name: str) -> str:
    """What a config's ``matmul_dtype`` resolves to here, by name."""
    return "bfloat16" if nets.resolve_matmul_dtype(name) == jnp.bfloat16 else "float32"


def _plain_overrides() -> list[str]:
    """Augmentation, dropout and label smoothing back to the base (off) values.

    The torch reference has none of them, so the compared steps must not either.
    """
    base = config_lib.base_config()
    keys = [k for k in base if k.startswith("augment_")] + ["dropout_rate", "label_smoothing"]
    return [f"{k}={base[k]}" for k in keys if k in base]


def _config(
    model: str, batch: int, conv_impl: str, plain: bool, matmul_dtype: str | None = None
) -> Any:
    """The model's default config; ``plain`` turns the extras off to match the reference."""
    path = config_lib.default_config_path("dae" if model == "dae" else "classifier")
    overrides = [f"batch_size={batch}", f"conv_impl={conv_impl}", "progress=false"]
    if matmul_dtype is not None:  # None: the config's own
        overrides.append(f"matmul_dtype={matmul_dtype}")
    return config_lib.get_config(path, overrides + (_plain_overrides() if plain else []))


def _state_and_step(
    model: str, config: Any, steps_per_epoch: int
) -> tuple[Any, training_loop.TrainStep]:
    rng = jax.random.PRNGKey(config.seed)
    if model == "dae":
        state = pretrain.create_train_state(rng, config, steps_per_epoch)
        return state, pretrain.task_for(config).train_step
    if model == "classifier":
        state = train.create_train_state(rng, config, steps_per_epoch)
        return state, train.task_for(config).train_step
    raise ValueError(f"unknown model {model!r}; expected one of {MODELS}")


def random_split(num_examples: int, seed: int = 0) -> input_pipeline.DeviceSplit:
    """Random uint8 digits held on the device, like a loaded MNIST split."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (num_examples, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, num_examples).astype(np.int32)
    return input_pipeline.device_split(images, labels)


def _timed_calls(call: Callable[[], Any], seconds: float) -> tuple[int, float, float]:
    """Calls ``call`` (which blocks) for about ``seconds``, at least once.

    Returns (calls, total seconds, fastest call in seconds): the mean is what the
    reference script reports; the fastest call is the one least disturbed by others.
    """
    calls, best = 0, float("inf")
    start = time.perf_counter()
    while True:
        began = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - began)
        calls += 1
        if time.perf_counter() - start >= seconds:
            break
    return calls, time.perf_counter() - start, best


def time_training(
    model: str,
    batch: int,
    conv_impl: str,
    split: input_pipeline.DeviceSplit,
    seconds: float,
    steps_per_call: int = 20,
    plain: bool = True,
    matmul_dtype: str | None = None,
) -> dict[str, Any]:
    """Images per second of real train steps run by ``training_loop._train_chunk``.

    As in training, the batch is split over all devices when they divide it.
    """
    config = _config(model, batch, conv_impl, plain, matmul_dtype)
    steps_per_epoch = training_loop.steps_per_epoch(config, split.size)
    steps = max(1, min(steps_per_call, steps_per_epoch))
    state, step = _state_and_step(model, config, steps_per_epoch)
    mesh = parallel.data_mesh(batch % jax.device_count() == 0)
    state, images, labels = parallel.replicate((state, split.images, split.labels), mesh)
    idx = input_pipeline.epoch_indices(jax.random.PRNGKey(1), split.size, batch)[:steps]
    rng = jax.random.PRNGKey(2)
    sharding = parallel.batch_sharding(mesh)
    began = time.perf_counter()
    # Compiled ahead of time: the compile is timed apart and no run is wasted on it.
    chunk = training_loop._train_chunk.lower(
        step, state, images, labels, idx, rng, sharding
    ).compile()
    compile_s = time.perf_counter() - began
    holder = {"state": state}

    def call() -> None:
        holder["state"], sums = chunk(holder["state"], images, labels, idx, rng)
        jax.block_until_ready(sums)

    calls, total, best = _timed_calls(call, seconds)
    images = calls * steps * batch
    return {
        "model": model,
        "conv_impl": conv_impl,
        "matmul_dtype": matmul_dtype_name(config.matmul_dtype),
        "batch": batch,
        "devices": 1 if mesh is None else mesh.size,
        "steps_per_call": steps,
        "steps": calls * steps,
        "compile_s": round(compile_s, 3),
        "ms_per_step": round(1e3 * total / (calls * steps), 3),
        "images_per_s": round(images / total, 1),
        "best_call_images_per_s": round(steps * batch / best, 1),
    }


def _timed_inference(
    call: Callable[[], Any], compile_s: float, batch: int, seconds: float, calls: int
) -> dict[str, Any]:
    def timed() -> None:
        out = None
        for _ in range(calls):
            out = call()
        jax.block_until_ready(out)  # JAX dispatches asynchronously: wait for the last

    n_calls, total, best = _timed_calls(timed, seconds)
    return {
        "batch": batch,
        "compile_s": round(compile_s, 3),
        "images_per_s": round(n_calls * calls * batch / total, 1),
        "best_call_images_per_s": round(calls * batch / best, 1),
    }


def time_inference(
    conv_impl: str, batch: int, seconds: float, calls_per_timing: int = 10
) -> dict[str, Any]:
    """Classifier outputs per second of the jitted apply ``inference`` uses (no TTA view)."""
    model = nets.Classifier(conv_impl=conv_impl)
    params = nets.init_params(model, jax.random.PRNGKey(0))
    images = jax.random.uniform(jax.random.PRNGKey(1), (batch, 28, 28, 1))
    call = lambda: inference.jax_outputs(model, params, images)  # noqa: E731
    began = time.perf_counter()
    jax.block_until_ready(call())
    compile_s = time.perf_counter() - began
    row = _timed_inference(call, compile_s, batch, seconds, calls_per_timing)
    return {"model": "classifier", "backend": "jax", "conv_impl": conv_impl, **row}


def time_numpy_inference(batch: int, seconds: float, calls_per_timing: int = 10) -> dict[str, Any]:
    """Classifier outputs per second of the NumPy forward pass ``read`` uses by default."""
    params = nets.init_params(nets.Classifier(), jax.random.PRNGKey(0))
    arrays = export.to_numpy(params)
    images = np.random.default_rng(1).random((batch, 28, 28, 1), np.float32)
    call = lambda: numpy_classifier.outputs(arrays, images)  # noqa: E731
    row = _timed_inference(call, 0.0, batch, seconds, calls_per_timing)
    return {"model": "classifier", "backend": "numpy", "conv_impl": None, **row}


def time_read(model_dir: str | Path, runs: int = 5, photo: Path = SAMPLE_PAGE) -> dict[str, Any]:
    """Wall time of ``digits-jax read PHOTO --model DIR`` as a user runs it (a new process
    each time, start-up included), after one untimed run that warms the disk caches."""
    command = [sys.executable, "-c", "from digits_jax.cli import entry; entry()"]
    command += ["read", str(photo), "--model", str(model_dir)]
    walls = []
    for i in range(runs + 1):
        began = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        wall = time.perf_counter() - began
        if done.returncode != 0:
            raise DigitsJaxError(f"digits-jax read failed: {done.stderr.strip()[-300:]}")
        if i:
            walls.append(round(wall, 3))
    return {
        "photo": str(photo),
        "model": str(model_dir),
        "runs": runs,
        "wall_s": walls,
        "median_s": float(np.median(walls)),
        "text": done.stdout.strip().splitlines(),
    }


def torch_unavailable(script: str | Path) -> str | None:
    """Why the torch comparison cannot run, or None when it can."""
    if not Path(script).is_file():
        return f"torch reference script not found: {script}"
    if importlib.util.find_spec("torch") is None:
        return "torch is not installed in this environment (pip install torch==2.13.0)"
    return None


def run_torch_reference(
    script: str | Path, models_: Sequence[str], batches: Sequence[int], seconds: float
) -> dict[str, Any]:
    """Runs the reference script in a subprocess and returns its JSON (torch stays out)."""
    cmd = [sys.executable, str(script), "--seconds", str(seconds), "--models", *models_]
    cmd += ["--batches", *map(str, batches)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
        raise RuntimeError(f"torch reference failed ({proc.returncode}): {tail[0]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _best(rows: list[dict[str, Any]], model: str) -> dict[str, Any] | None:
    mine = [r for r in rows if r["model"] == model]
    return max(mine, key=lambda r: r["images_per_s"]) if mine else None


def _matmul_dtype(row: dict[str, Any]) -> str:
    return row.get("matmul_dtype", "float32")


def variants(conv_impls: Sequence[str], matmul_dtypes: Sequence[str]) -> list[tuple[str, str]]:
    """The (conv_impl, matmul_dtype) pairs to time: ``matmul_dtype`` changes only the
    ``unfold`` layers, so ``xla`` is timed in float32 alone."""
    return [
        (impl, dtype)
        for impl in conv_impls
        for dtype in matmul_dtypes
        if dtype == "float32" or nets.resolve_conv_impl(impl) == "unfold"
    ]


def compare(train_rows: list[dict[str, Any]], torch_rows: list[dict[str, Any]]) -> list[dict]:
    """JAX/torch ratio per model and JAX matmul dtype, each side at its own best batch
    (and JAX at its best impl)."""
    out = []
    for model, dtype in dict.fromkeys((r["model"], _matmul_dtype(r)) for r in train_rows):
        mine = [r for r in train_rows if _matmul_dtype(r) == dtype]
        jax_best, torch_best = _best(mine, model), _best(torch_rows, model)
        if jax_best is None or torch_best is None:
            continue
        out.append(
            {
                "model": model,
                "jax_images_per_s": jax_best["images_per_s"],
                "jax_batch": jax_best["batch"],
                "jax_conv_impl": jax_best["conv_impl"],
                "jax_matmul_dtype": dtype,
                "torch_images_per_s": torch_best["images_per_s"],
                "torch_batch": torch_best["batch"],
                "ratio": round(jax_best["images_per_s"] / torch_best["images_per_s"], 2),
            }
        )
    return out


def run_benchmarks(
    models: Sequence[str] = MODELS,
    batches: Sequence[int] = (32, 64, 128, 256),
    seconds: float = 3.0,
    conv_impls: Sequence[str] = ("unfold", "xla"),
    compare_torch: str | None = None,
    *,
    matmul_dtypes: Sequence[str] = ("float32", "bfloat16"),
    steps_per_call: int = 20,
    num_examples: int = EPOCH_EXAMPLES,
    epoch_batch: int = DEFAULT_BATCH,
    inference_batch: int = INFERENCE_BATCH,
    epoch: bool = True,
    read_model: str | Path | None = None,
    read_runs: int = 5,
    command: str | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Measures everything and returns one JSON-able dict (see the module docstring).

    ``compare_torch`` is the reference script's path, or None to skip it. Training rows
    use each model's default config with augmentation, dropout and label smoothing off
    (the reference has none);
    the epoch rows (``epoch=False`` skips them) use the default configs as they are
    (the classifier's augmentation included) at ``epoch_batch`` with ``conv_impl="auto"``.
    ``read_model`` (a trained classifier workdir) adds the wall time of ``digits-jax
    read`` on the sample page; None skips it. ``matmul_dtypes`` times the ``unfold``
    rows once per config ``matmul_dtype``; the ratios to torch are given for each.
    """
    log = log or (lambda _message: None)
    conv_impls = list(conv_impls)
    for impl in conv_impls:
        nets.resolve_conv_impl(impl)  # fails early on a bad name
    model_names = list(models)
    split = random_split(num_examples)
    torch_skip = torch_unavailable(compare_torch) if compare_torch else "not requested"
    rows: list[dict[str, Any]] = []
    torch_rows: list[dict[str, Any]] = []
    torch_meta: dict[str, Any] = {}
    for model in model_names:
        for batch in batches:
            for impl, dtype in variants(conv_impls, matmul_dtypes):
                row = time_training(
                    model, batch, impl, split, seconds, steps_per_call, matmul_dtype=dtype
                )
                label = f"{impl} {dtype}"
                log(f"jax   {model:10s} {label:15s} batch {batch:4d}: {row['images_per_s']:9.0f}/s")
                rows.append(row)
            if torch_skip is None:  # interleaved: same moment, same load
                try:
                    ref = run_torch_reference(compare_torch, [model], [batch], seconds)
                except (RuntimeError, json.JSONDecodeError, OSError) as error:
                    torch_skip = str(error)
                    continue
                torch_meta = {k: v for k, v in ref.items() if k != "results"}
                torch_rows.extend(ref["results"])
                ips = ref["results"][0]["images_per_s"]
                log(f"torch {model:10s}        batch {batch:4d}: {ips:9.0f}/s")
    epochs = []
    for model in model_names if epoch else []:
        auto = nets.resolve_conv_impl("auto")
        default = _config(model, 8, auto, False)
        default_matmul = matmul_dtype_name(default.matmul_dtype)
        plain_is_default = default == _config(model, 8, auto, True)
        row = next(  # the default config was already timed: reuse it, no second compile
            (
                r
                for r in rows
                if plain_is_default
                and (r["model"], r["batch"], nets.resolve_conv_impl(r["conv_impl"]))
                == (model, epoch_batch, auto)
                and _matmul_dtype(r) == default_matmul
            ),
            None,
        ) or time_training(model, epoch_batch, "auto", split, seconds, steps_per_call, False)
        steps = num_examples // epoch_batch
        epochs.append(
            {
                "model": model,
                "config": f"configs/{'dae' if model == 'dae' else 'classifier'}.py",
                "batch": epoch_batch,
                "conv_impl": auto,
                "matmul_dtype": default_matmul,
                "examples": steps * epoch_batch,
                "images_per_s": row["images_per_s"],
                "epoch_s": round(steps * epoch_batch / row["images_per_s"], 2),
            }
        )
        log(f"epoch {model:10s}: {epochs[-1]['epoch_s']:.1f} s")
    inference = [time_inference(impl, inference_batch, seconds) for impl in conv_impls]
    inference.append(time_numpy_inference(inference_batch, seconds))
    read = time_read(read_model, read_runs) if read_model is not None else None
    if read is not None:
        log(f"digits-jax read: median {read['median_s']:.2f} s over {read_runs} runs")
    return {
        "command": command if command is not None else shlex.join(sys.argv),
        "machine": machine_info(),
        "settings": {
            "models": model_names,
            "batches": list(batches),
            "conv_impls": conv_impls,
            "matmul_dtypes": list(matmul_dtypes),
            "seconds": seconds,
            "steps_per_call": steps_per_call,
            "num_examples": num_examples,
            "data": "random uint8 images on the device",
            "train_config": "default configs, augmentation/dropout/smoothing off (as torch)",
        },
        "train": rows,
        "epoch": epochs,
        "inference": inference,
        "read": read if read is not None else {"skipped": "no trained model given"},
        "torch": (
            {**torch_meta, "script": str(compare_torch), "results": torch_rows}
            if torch_skip is None
            else {"skipped": torch_skip}
        ),
        "comparison": compare(rows, torch_rows),
    }


def format_table(result: dict[str, Any]) -> str:
    """The result as plain text: machine, training table, ratios, epochs, inference."""
    m = result["machine"]
    lines = [
        f"command: {result['command']}",
        f"machine: {m['cpu_count']} CPUs ({m['cpu_model'] or m['platform']}), "
        f"backend {m['backend']} ({m['device_count']} x {m['device_kind']}), "
        f"jax {m['jax']}, flax {m['flax']}, "
        f"conv_impl auto -> {m['auto_conv_impl']}, "
        f"matmul_dtype auto -> {m.get('auto_matmul_dtype', 'float32')}"
        + (f", XLA_FLAGS={m['xla_flags']}" if m["xla_flags"] else ""),
    ]
    settings = result["settings"]
    columns = variants(settings["conv_impls"], settings.get("matmul_dtypes", ["float32"]))
    torch_by = {(r["model"], r["batch"]): r for r in result["torch"].get("results", [])}
    has_torch = bool(torch_by)
    has_bf16 = any(dtype == "bfloat16" for _, dtype in columns)
    names = [f"jax {i}" + (" bf16" if d == "bfloat16" else "") for i, d in columns]
    header = f"{'model':<11}{'batch':>6}" + "".join(f"{n:>17}" for n in names)
    if has_torch:
        header += f"{'torch':>10}{'best/torch':>12}" + (f"{'bf16/torch':>12}" if has_bf16 else "")
    lines += [
        "",
        f"training throughput, images/s (lax.scan chunks of "
        f"{settings['steps_per_call']} steps, compile excluded; bf16: the unfold "
        "layers' matmul operands in bfloat16)",
        header,
    ]
    by = {(r["model"], r["batch"], r["conv_impl"], _matmul_dtype(r)): r for r in result["train"]}
    for model in settings["models"]:
        for batch in settings["batches"]:
            cells = [by.get((model, batch, i, d)) for i, d in columns]
            line = f"{model:<11}{batch:>6}" + "".join(
                f"{c['images_per_s']:>17.0f}" if c else f"{'-':>17}" for c in cells
            )
            ref = torch_by.get((model, batch))
            if has_torch:
                line += f"{ref['images_per_s']:>10.0f}" if ref else f"{'-':>10}"
                for dtype in ("float32", "bfloat16") if has_bf16 else ("float32",):
                    mine = [c["images_per_s"] for c in cells if c and _matmul_dtype(c) == dtype]
                    ok = ref and mine
                    line += f"{max(mine) / ref['images_per_s']:>11.2f}x" if ok else f"{'-':>12}"
            lines.append(line)
    if result["comparison"]:
        lines += ["", "JAX / torch, each at its best batch size:"]
        for c in result["comparison"]:
            dtype = c.get("jax_matmul_dtype", "float32")
            lines.append(
                f"  {c['model']:<11}{c['ratio']:.2f}x  (JAX {c['jax_images_per_s']:.0f}/s "
                f"{c['jax_conv_impl']} batch {c['jax_batch']}, {dtype} matmuls; torch "
                f"{c['torch_images_per_s']:.0f}/s batch {c['torch_batch']})"
            )
    elif "skipped" in result["torch"]:
        lines += ["", f"torch comparison skipped: {result['torch']['skipped']}"]
    lines += ["", "time per epoch (default config, training steps only):"]
    for e in result["epoch"]:
        lines.append(
            f"  {e['model']:<11}{e['epoch_s']:7.1f} s  ({e['examples']} images, batch "
            f"{e['batch']}, {e['conv_impl']}, {e.get('matmul_dtype', 'float32')} matmuls, "
            f"{e['config']}, {e['images_per_s']:.0f}/s)"
        )
    lines += ["", "classifier inference (logits and features; JAX: the jitted apply):"]
    for r in result["inference"]:
        name = "numpy" if r["backend"] == "numpy" else f"jax {r['conv_impl']}"
        lines.append(f"  {name:<11}{r['images_per_s']:9.0f} images/s  (batch {r['batch']})")
    lines += _race_lines(result.get("time_to_accuracy", []))
    read = result["read"]
    if "skipped" in read:
        lines += ["", f"digits-jax read timing skipped: {read['skipped']}"]
    else:
        walls = ", ".join(f"{w:.2f}" for w in read["wall_s"])
        lines += [
            "",
            f"digits-jax read {read['photo']} --model {read['model']} (new process each):",
            f"  median {read['median_s']:.2f} s  (runs: {walls} s)",
        ]
    return "\n".join(lines)


def _race_lines(races: list[dict[str, Any]]) -> list[str]:
    if not races:
        return []
    lines = ["", "time to accuracy (training seconds, compile and evaluations excluded):"]
    for r in races:
        config = r["config"]
        head = (
            f"  {r['compute_dtype']:<9} batch {config['batch_size']}, "
            f"{config['num_epochs']} epochs: {100 * r['target']:.2f}% "
        )
        if r["reached"]:
            head += f"after {r['train_s_to_target']:.3f} s ({r['epochs_to_target']} epochs)"
        else:
            head += "not reached"
        epoch = min(r["epoch_s"]) if r["epoch_s"] else float("nan")
        lines += [
            head,
            f"            final {100 * r['final_accuracy']:.2f}%, fastest epoch {epoch:.3f} s, "
            f"compile {r['compile_s']:.1f} s",
        ]
    return lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``digits-jax bench`` flags (the CLI calls this, then :func:`main`)."""
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "--compare-torch",
        nargs="?",
        const=str(DEFAULT_TORCH_SCRIPT),
        default=None,
        metavar="SCRIPT",
        help="also run the PyTorch reference script (default: ../shared/bench/"
        "torch_reference.py of this checkout); needs torch installed",
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="timing per measurement")
    parser.add_argument("--batches", type=int, nargs="+", default=[32, 64, 128, 256])
    parser.add_argument(
        "--models",
        nargs="*",
        choices=MODELS,
        default=list(MODELS),
        help="models whose throughput to time (none: skip the throughput tables)",
    )
    parser.add_argument(
        "--conv-impls", nargs="+", choices=("unfold", "xla", "auto"), default=["unfold", "xla"]
    )
    parser.add_argument(
        "--matmul-dtypes",
        nargs="+",
        choices=("float32", "bfloat16"),
        default=["float32", "bfloat16"],
        help="time the unfold rows with each config matmul_dtype (bfloat16: the matmul "
        "operands only, float32 sums)",
    )
    parser.add_argument(
        "--steps-per-call", type=int, default=20, help="train steps per compiled scan call"
    )
    parser.add_argument(
        "--read-model",
        type=Path,
        default=None,
        metavar="DIR",
        help="a trained classifier workdir to time `digits-jax read` of the sample page with "
        f"(default: {DEFAULT_READ_MODEL} when it exists, else that timing is skipped)",
    )
    parser.add_argument("--read-runs", type=int, default=5, help="timed runs of read")
    parser.add_argument(
        "--to-accuracy",
        type=float,
        default=None,
        metavar="ACC",
        help="also train --race-config on real MNIST until this test accuracy (e.g. 0.99) "
        "and report the training seconds it took",
    )
    parser.add_argument(
        "--race-config",
        type=Path,
        nargs="+",
        default=[time_to_accuracy.DEFAULT_CONFIG],
        metavar="FILE",
        help="the configs of that run, each raced (default: configs/classifier_race.py)",
    )
    parser.add_argument(
        "--race-dtypes",
        nargs="+",
        choices=("float32", "bfloat16"),
        default=["float32"],
        help="run the race once per compute dtype",
    )
    parser.add_argument(
        "--race-plot",
        type=Path,
        default=None,
        metavar="PNG",
        help="draw the races' test accuracy against training seconds into PNG",
    )
    parser.add_argument(
        "--mnist-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="the race reads MNIST's four IDX files from DIR instead of the prepared copy",
    )
    parser.add_argument(
        "--cpu-devices",
        type=int,
        default=0,
        metavar="N",
        help="split the CPU into N devices, as training does (default 0: one per core, "
        "at most the smallest batch / 16); training rows shard each batch over them",
    )


def main(args: argparse.Namespace) -> int:
    """Runs the benchmarks with parsed ``add_arguments`` flags and prints them."""
    if args.seconds <= 0 or args.steps_per_call <= 0 or any(b <= 0 for b in args.batches):
        raise DigitsJaxError("--seconds, --steps-per-call and --batches must be > 0")
    if args.read_runs <= 0:
        raise DigitsJaxError("--read-runs must be > 0")
    if args.cpu_devices < 0:
        raise DigitsJaxError("--cpu-devices must be >= 0")
    if args.to_accuracy is not None and not 0 < args.to_accuracy <= 1:
        raise DigitsJaxError(f"--to-accuracy must be in (0, 1], got {args.to_accuracy}")
    for flag, value in (("--mnist-dir", args.mnist_dir), ("--race-plot", args.race_plot)):
        if value is not None and args.to_accuracy is None:
            raise DigitsJaxError(f"{flag} is used only by the race: add --to-accuracy")
    if args.mnist_dir is not None:
        mnist_files.locate_idx_files(args.mnist_dir)  # a bad folder fails before any timing
    race_configs = []
    if args.to_accuracy is not None:  # bad config files fail before any timing
        race_configs = [
            time_to_accuracy.race_config(path, dtype)
            for path in args.race_config
            for dtype in args.race_dtypes
        ]
    read_model = args.read_model
    if read_model is None and DEFAULT_READ_MODEL.is_dir():
        read_model = DEFAULT_READ_MODEL
    elif read_model is not None and not read_model.is_dir():
        raise DigitsJaxError(f"--read-model: no such folder: {read_model}")
    parallel.split_cpu(parallel.cpu_device_count(args.cpu_devices, min(args.batches)))
    result = run_benchmarks(
        models=args.models,
        batches=args.batches,
        seconds=args.seconds,
        conv_impls=args.conv_impls,
        compare_torch=args.compare_torch,
        matmul_dtypes=args.matmul_dtypes,
        steps_per_call=args.steps_per_call,
        read_model=read_model,
        read_runs=args.read_runs,
        command=shlex.join(["digits-jax", "bench", *_argv_after("bench")]),
        log=_log,
    )
    if race_configs:
        result["time_to_accuracy"] = [
            time_to_accuracy.time_to_accuracy(
                c, *time_to_accuracy.load_splits(c, args.mnist_dir), args.to_accuracy, log=_log
            )
            for c in race_configs
        ]
        if args.race_plot is not None:
            machine = result["machine"]
            title = f"time to {100 * args.to_accuracy:.1f}%: {machine['device_kind']}"
            plots.plot_races(result["time_to_accuracy"], args.race_plot, title)
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _argv_after(word: str) -> list[str]:
    argv = sys.argv[1:]
    return argv[argv.index(word) + 1 :] if word in argv else argv


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(
        prog="python -m digits_jax.bench", description=__doc__.splitlines()[0]
    )
    add_arguments(_parser)
    sys.exit(main(_parser.parse_args()))
