#!/bin/sh
# tests/cuda/device_unpack.sh — on the GPU machine: unpack what sync_device.sh staged.
set -eu
for f in build/cuda_dev/*.gz; do gunzip -f "$f"; chmod +x "${f%.gz}"; done
