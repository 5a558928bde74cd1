#!/bin/sh
# tests/cuda/sync_device.sh — stage what a lent GPU machine needs into DEST (a folder the
# device tool carries): the tracked sources plus the binaries of build_device.sh,
# gzip'd (OpenBLAS makes each ~26 MB; the carried tree must stay under 64 MiB).
# On the device: sh tests/cuda/device_unpack.sh, then tests/cuda/cuda_check.sh with
# TESTS_BIN/BENCH_BIN/TRAIN_BIN/DECODE_BIN pointing into build/cuda_dev.
set -eu
DEST=$1
rm -rf "$DEST"
mkdir -p "$DEST/build/cuda_dev"
git ls-files -z | xargs -0 cp --parents -t "$DEST"
for f in crucible_cuda_tests cuda_ops_bench cuda_train_step cuda_decode crucible; do gzip -1 -c build/cuda_dev/$f > "$DEST/build/cuda_dev/$f.gz"; done
cp build/cuda_dev/libcjson.so.1 "$DEST/build/cuda_dev/"
cp -r build/cuda_dev/lib "$DEST/build/cuda_dev/"
du -sh "$DEST"
