#!/usr/bin/env bash
# The GPU check, for a fresh GPU machine holding only this repo (no network, no install step):
# builds the CUDA extension, runs the `cuda` tests (and the CPU tests as a sanity check of the
# build), then benchmarks the CUDA path and prints its table last. Fits a 10-minute call.
#   bash benchmarks/gpu_check.sh            # writes logs under $OUT (or /tmp/rastlit-gpu-check)
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export RASTLIT_BUILD_DIR="${RASTLIT_BUILD_DIR:-/tmp/rastlit-build}"
logs="${OUT:-/tmp/rastlit-gpu-check}"
mkdir -p "$logs"
PY="${PYTHON:-python3}"

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee "$logs/gpu.txt"
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))" \
  | tee -a "$logs/gpu.txt"

echo "== build"
start=$(date +%s)
if ! "$PY" -m rastlit.build -v > "$logs/build.txt" 2>&1; then
  tail -50 "$logs/build.txt"
  echo "BUILD FAILED"
  exit 1
fi
echo "built in $(( $(date +%s) - start )) s"

echo "== cuda tests"
# every op's GPU tests (marker `cuda`): CUDA against the CPU kernels
op_tests=$(ls tests/test_cuda.py tests/test_texture.py tests/test_antialias.py tests/test_rasterize_soft.py \
  tests/test_depth_peel.py 2>/dev/null)
"$PY" -m pytest -q -p no:cacheprovider -m cuda $op_tests 2>&1 | tee "$logs/cuda_tests.txt"
cuda_rc=${PIPESTATUS[0]}

echo "== cpu tests (same build)"
"$PY" -m pytest -q -p no:cacheprovider -x tests/test_rasterize.py tests/test_interpolate.py 2>&1 | tail -3 \
  | tee "$logs/cpu_tests.txt"

echo "== benchmark"
for b in bench_texture bench_antialias bench_rasterize_soft bench_depth_peel; do
  [ -f "benchmarks/$b.py" ] && timeout 120 "$PY" "benchmarks/$b.py" --device cuda 2>&1 | tee "$logs/$b.txt"
done
# the rasterize + interpolate table, last
"$PY" benchmarks/bench_ops.py --device cuda 2>&1 | tee "$logs/bench_cuda.txt"
echo "cuda tests exit code: $cuda_rc"
exit "$cuda_rc"
