#!/bin/sh
# tests/cuda/cuda_check.sh — the body of `make cuda-check`: runs the CUDA op tests
# (tests/cuda, against the CPU backend), the CUDA op benchmark and, when PyTorch with
# CUDA is importable, the PyTorch peer; prints the summary tables last.
#   TESTS_BIN  test runner (default build/crucible_tests)
#   BENCH_BIN  benchmark   (default build/bench/cuda_ops_bench)
#   TRAIN_BIN  training-step benchmark (default build/bench/cuda_train_step)
#   OUT        folder for the full logs (default build/cuda_check)
# Exit status: that of the tests. On a machine without a GPU every step says it was
# skipped. On the lent GPU machines (no OpenBLAS/cJSON/... there) run the binaries
# linked by tests/cuda/build_device.sh: TESTS_BIN=build/cuda_dev/crucible_cuda_tests
# BENCH_BIN=build/cuda_dev/cuda_ops_bench TRAIN_BIN=build/cuda_dev/cuda_train_step.
set -u
TESTS_BIN=${TESTS_BIN:-build/crucible_tests}
BENCH_BIN=${BENCH_BIN:-build/bench/cuda_ops_bench}
TRAIN_BIN=${TRAIN_BIN:-build/bench/cuda_train_step}
OUT=${OUT:-build/cuda_check}
mkdir -p "$OUT"
for d in /usr/local/cuda/lib64 $(python3 -c 'import nvidia.cublas, os; print(os.path.dirname(nvidia.cublas.__file__) + "/lib")' 2>/dev/null); do
    LD_LIBRARY_PATH=${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$d
done
export LD_LIBRARY_PATH
gpu=$(nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv,noheader 2>/dev/null)
echo "cuda-check: GPU: ${gpu:-none visible}"
"$TESTS_BIN" cuda_ > "$OUT/tests.log" 2>&1; rc=$?
grep -E "FAIL|SKIP:" "$OUT/tests.log" | sort | uniq -c | head -40
if [ -n "$gpu" ]; then
    "$BENCH_BIN" > "$OUT/bench.log" 2>&1 || echo "cuda_ops_bench failed: $?"
    "$TRAIN_BIN" 2 4096 > "$OUT/train.log" 2>&1 || echo "cuda_train_step failed: $? (see $OUT/train.log)"
    if python3 -c 'import torch, sys; sys.exit(not torch.cuda.is_available())' 2>/dev/null; then
        PYTHONUNBUFFERED=1 timeout 300 python3 bench/cuda_torch_peer.py 2 4096 > "$OUT/peer.log" 2>&1 ||
            echo "PyTorch peer failed: $? (see $OUT/peer.log)"
    else
        echo "PyTorch with CUDA not importable: peer skipped" > "$OUT/peer.log"
    fi
else
    echo "no GPU: benchmarks skipped" > "$OUT/bench.log"
    echo "no GPU: training-step benchmark skipped" > "$OUT/train.log"
    echo "no GPU: PyTorch peer skipped" > "$OUT/peer.log"
fi
echo
echo "== summary (logs in $OUT) =="
echo "tests/cuda:"
grep -E "^\[ (OK|FAIL|SKIP)" "$OUT/tests.log" | sed 's/^/  /'
tail -1 "$OUT/tests.log" | sed 's/^/  /'
echo
sed -n '/^op (CUDA/,$p; /nothing measured\|skipped/p' "$OUT/bench.log"
echo
cat "$OUT/train.log"
echo
sed -n '/MFU\|peak memory\|failed\|skipped/p; /^op (PyTorch/,$p' "$OUT/peer.log"
exit $rc
