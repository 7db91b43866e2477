#!/usr/bin/env bash
# The GPU check, for a fresh GPU machine holding only this repo (no network, no install step):
# builds the CUDA extension, runs the `cuda` tests (CUDA against the CPU kernels), optionally
# a memcheck pass and a short training run on the GPU, then benchmarks the CUDA path and prints
# the rasterize + interpolate table last. Fits a 10-minute call with room to spare.
#   bash benchmarks/gpu_check.sh            # logs under $OUT (or /tmp/rastlit-gpu-check)
# Environment: RASTLIT_GPU_CHECK_MEMCHECK=1 adds a compute-sanitizer memcheck pass over the small
# `cuda` tests; the training step runs only where hydra-core is importable.
# At most seven log files, so that a harness that returns a few files gets them all.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export RASTLIT_BUILD_DIR="${RASTLIT_BUILD_DIR:-/tmp/rastlit-build}"
logs="${OUT:-/tmp/rastlit-gpu-check}"
mkdir -p "$logs"
PY="${PYTHON:-python3}"
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; }

{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
  echo "nvcc: $(command -v nvcc)"
} 2>&1 | tee "$logs/build.txt"

stamp "== build"
if ! "$PY" -m rastlit.build -v >> "$logs/build.txt" 2>&1; then
  tail -60 "$logs/build.txt"
  echo "BUILD FAILED"
  exit 1
fi
stamp "built"

stamp "== cuda tests"
op_tests=$(ls tests/test_cuda.py tests/test_texture.py tests/test_antialias.py tests/test_rasterize_soft.py \
  tests/test_depth_peel.py 2>/dev/null)
timeout_opt=$("$PY" -c "import pytest_timeout" 2>/dev/null && echo "--timeout=120")
# pytest-xdist, where present, runs the tests in worker processes: a crash in one test (a
# segfault) is then reported as that test's failure instead of ending the run without a summary.
xdist_opt=$("$PY" -c "import xdist" 2>/dev/null && echo "-n 4")
# -rfEs: list every failure, error and skip with its reason in the summary
timeout 240 "$PY" -m pytest -q -rfEs -p no:cacheprovider $timeout_opt $xdist_opt -m cuda $op_tests 2>&1 | tee "$logs/cuda_tests.txt"
cuda_rc=${PIPESTATUS[0]}
stamp "cuda tests exit code $cuda_rc"

if [ "${RASTLIT_GPU_CHECK_MEMCHECK:-0}" = 1 ] && command -v compute-sanitizer > /dev/null; then
  stamp "== memcheck (small cuda tests under compute-sanitizer, no caching allocator)"
  PYTORCH_NO_CUDA_MEMORY_CACHING=1 timeout 150 compute-sanitizer --tool memcheck --error-exitcode 9 \
    --print-limit 20 "$PY" -m pytest -q -x -p no:cacheprovider -m cuda \
    -k "not large_mesh and not gradcheck and not renderer" $op_tests > "$logs/memcheck.txt" 2>&1
  stamp "memcheck exit code $? (9: sanitizer errors; 124: timed out)"
  grep -E "ERROR SUMMARY|Invalid|passed|failed" "$logs/memcheck.txt" | tail -8
fi

if "$PY" -c "import hydra" 2> /dev/null; then
  stamp "== training on the GPU (trainer=gpu, logger=csv)"
  for task in mesh_fit texture_recovery; do
    start=$(date +%s)
    timeout 90 "$PY" -m rastlit.train task=$task trainer=gpu logger=csv paths.log_dir=/tmp/rastlit-train \
      > "$logs/train_gpu_$task.txt" 2>&1
    rc=$?
    stamp "task=$task trainer=gpu: exit $rc in $(( $(date +%s) - start )) s"
    tail -4 "$logs/train_gpu_$task.txt"
    find /tmp/rastlit-train -name metrics.json -newermt "@$start" -exec cat {} \; 2>/dev/null | tail -c 1500
    echo
  done
fi

stamp "== benchmark"
for b in bench_texture bench_antialias bench_rasterize_soft bench_depth_peel; do
  [ -f "benchmarks/$b.py" ] && timeout 90 "$PY" "benchmarks/$b.py" --device cuda 2>&1 | tee -a "$logs/bench_other.txt"
done
# training throughput of the CLI on the GPU (steps/s of the fit loop), where hydra is importable
if "$PY" -c "import hydra" 2> /dev/null; then
  timeout 150 "$PY" benchmarks/bench_train_steps.py --steps 200 -- trainer=gpu 2>&1 | tee -a "$logs/bench_other.txt"
fi
# head-to-head with nvdiffrast (says so and exits 0 where nvdiffrast.torch is not installed)
timeout 300 "$PY" benchmarks/bench_vs_nvdiffrast.py --reps 10 2>&1 | tee "$logs/bench_vs_nvdiffrast.txt"
# the rasterize + interpolate table, last
timeout 240 "$PY" benchmarks/bench_ops.py --device cuda --markdown 2>&1 | tee "$logs/bench_ops.txt"
stamp "done; cuda tests exit code: $cuda_rc"
exit "$cuda_rc"
