#!/usr/bin/env bash
# The GPU measurements of docs/benchmarks.md ("GPU") in one go, for a machine with a CUDA
# GPU where the project is importable (installed, or run from the checkout's root):
#
#   bash scripts/gpu_checks.sh OUTDIR [--mnist-dir DIR]
#
# OUTDIR gets race.json / race.png (time to 99.0%, float32 and bfloat16), bench.json
# (throughput of both models, three convolution choices) and tests.txt (the layer-equality
# and race tests on that device); extra flags go to the race (--mnist-dir where TFDS's copy
# of MNIST was never built). PYTHON picks the interpreter (default python3). SUITE=SECONDS
# also runs the whole test suite there for at most that long into suite.txt, interrupted
# (not killed) at the limit so that pytest still lists what failed.
set -u
out=${1:?usage: bash scripts/gpu_checks.sh OUTDIR [--mnist-dir DIR]}
shift
py=${PYTHON:-python3}
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$(pwd)
mkdir -p "$out"
"$py" -c "import jax; print('jax', jax.__version__, jax.devices())" | tee "$out/devices.txt"
# The throughput rows run XLA's convolution at batch 4096: hours on a CPU.
if [ "$("$py" -c 'import jax; print(jax.default_backend())')" = cpu ]; then
  echo "scripts/gpu_checks.sh: JAX sees no GPU here (backend cpu); use digits-jax bench" >&2
  exit 2
fi
"$py" -m digits_jax.cli bench --json --models --to-accuracy 0.99 \
  --race-dtypes float32 bfloat16 --race-plot "$out/race.png" "$@" \
  > "$out/race.json" 2> "$out/race.log"
echo "race: exit $? ($out/race.json)"
"$py" -m digits_jax.cli bench --json --batches 64 256 1024 4096 --conv-impls unfold xla auto \
  --seconds 1 --steps-per-call 100 > "$out/bench.json" 2> "$out/bench.log"
echo "bench: exit $? ($out/bench.json)"
"$py" -m pytest -q -p no:cacheprovider tests/test_models.py tests/test_time_to_accuracy.py \
  > "$out/tests.txt" 2>&1
echo "tests: exit $? ($out/tests.txt)"
if [ -n "${SUITE:-}" ]; then
  timeout -s INT "$SUITE" "$py" -m pytest -q -p no:cacheprovider -rfE --tb=line tests/ \
    > "$out/suite.txt" 2>&1
  echo "suite: exit $? ($out/suite.txt)"
fi
