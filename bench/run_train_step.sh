#!/bin/sh
# bench/run_train_step.sh — one training step (forward + backward + AdamW) of the same small
# MoE model, same weights, same tokens, same thread count, in PyTorch (transformers, eager mode)
# and in Crucible's CPU backend; prints both and the ratio C/torch (> 1 = Crucible faster).
#   sh bench/run_train_step.sh [THREADS=2] [STEPS=10]
# Needs python3 with torch + transformers + safetensors; builds build/bench/train_step.
set -eu
THREADS=${1:-2}
STEPS=${2:-10}
DIR=${BENCH_DIR:-build/bench/train_step_model}
export OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
# Both sides use OpenMP; idle threads sleep instead of spinning (matters on shared cores).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
make -s bench >/dev/null
mkdir -p "$DIR"
TORCH_OUT=$(python3 bench/train_step_torch.py --threads "$THREADS" --steps "$STEPS" --write "$DIR" 2>/dev/null | grep -v '^Loading')
echo "$TORCH_OUT"
C_OUT=$(./build/bench/train_step --model "$DIR" --threads "$THREADS" --steps "$STEPS")
echo "$C_OUT"
T=$(echo "$TORCH_OUT" | sed -n 's/.*torch_tokens_per_s=\([0-9.]*\).*/\1/p')
C=$(echo "$C_OUT" | sed -n 's/^c_tokens_per_s=\([0-9.]*\)$/\1/p')
[ -n "$T" ] && [ -n "$C" ] || { echo "run_train_step: could not read tokens/s" >&2; exit 1; }
echo "first-step loss: torch $(echo "$TORCH_OUT" | sed -n 's/.*first-step loss \([0-9.]*\).*/\1/p' | head -1), crucible $(echo "$C_OUT" | sed -n 's/.*first-step loss \([0-9.]*\).*/\1/p') (same weights and tokens: must agree)"
awk -v c="$C" -v t="$T" -v th="$THREADS" 'BEGIN { printf "train_step ratio C/torch = %.2f (%.0f vs %.0f tokens/s, %d threads)\n", c / t, c, t, th }'
