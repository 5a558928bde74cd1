#!/bin/sh
# tests/cuda/run_on_device.sh — what runs on the GPU machine: the CUDA op tests, the
# CUDA op benchmark and the PyTorch peer, from binaries built by build_device.sh.
# Logs go to $OUT (when set); the summary tables come last.
set -u
OUT=${OUT:-/tmp}
B=build/cuda_dev
for d in /usr/local/cuda/lib64 $(python3 -c 'import nvidia.cublas, os; print(os.path.dirname(nvidia.cublas.__file__) + "/lib")' 2>/dev/null); do
    LD_LIBRARY_PATH=${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$d
done
export LD_LIBRARY_PATH
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv,noheader
echo "== tests =="
$B/crucible_cuda_tests "$@" > $OUT/tests.log 2>&1; rc=$?
grep -E "FAIL|err |SKIP|passed" $OUT/tests.log | grep -v "err [0-9.e-]*$" | head -40
grep -E "^\[|passed" $OUT/tests.log
echo "== bench =="
$B/cuda_ops_bench > $OUT/bench.log 2>&1 || echo "cuda_ops_bench failed: $?"
echo "== torch peer =="
PYTHONUNBUFFERED=1 timeout 240 python3 bench/cuda_torch_peer.py 2 4096 > $OUT/peer.log 2>&1 || echo "peer failed: $?"
echo; sed -n '/^op (CUDA/,$p' $OUT/bench.log
echo; sed -n '/MFU\|peak memory\|failed/p; /^op (PyTorch/,$p' $OUT/peer.log
exit $rc
