#!/bin/sh
# bench/run_train_step.sh — one training step (forward + backward + AdamW) of the same small
# MoE model, same weights, same tokens, same thread count, in PyTorch (transformers, eager mode)
# and in Crucible's CPU backend; prints both and the ratio C/torch (> 1 = Crucible faster).
#   sh bench/run_train_step.sh [THREADS=2] [STEPS=10] [ROUNDS=3]
# Round 1 times every torch attention/experts variant and keeps the fastest as the baseline;
# each round then times torch and C back to back, and the median of the rounds' ratios is
# reported (the rounds bracket load changes on a shared machine).
# Needs python3 with torch + transformers + safetensors; builds build/bench/train_step.
set -eu
THREADS=${1:-2}
STEPS=${2:-10}
ROUNDS=${3:-3}
DIR=${BENCH_DIR:-build/bench/train_step_model}
export OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
# Both sides use OpenMP; idle threads sleep instead of spinning (matters on shared cores).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
make -s bench >/dev/null
mkdir -p "$DIR"
VARIANTS=sdpa/grouped_mm,sdpa/eager,eager/eager
RATIOS=""
r=1
while [ "$r" -le "$ROUNDS" ]; do
  echo "--- round $r (load $(cut -d' ' -f1-3 /proc/loadavg))"
  if [ "$r" = 1 ]; then W="--write $DIR"; else W=""; fi
  TORCH_OUT=$(python3 bench/train_step_torch.py --threads "$THREADS" --steps "$STEPS" --variants "$VARIANTS" $W 2>/dev/null | grep -v '^Loading')
  echo "$TORCH_OUT"
  C_OUT=$(./build/bench/train_step --model "$DIR" --threads "$THREADS" --steps "$STEPS")
  echo "$C_OUT"
  T=$(echo "$TORCH_OUT" | sed -n 's/.*torch_tokens_per_s=\([0-9.]*\).*/\1/p')
  C=$(echo "$C_OUT" | sed -n 's/^c_tokens_per_s=\([0-9.]*\)$/\1/p')
  [ -n "$T" ] && [ -n "$C" ] || { echo "run_train_step: could not read tokens/s" >&2; exit 1; }
  LT=$(echo "$TORCH_OUT" | sed -n 's/.*first-step loss \([0-9.]*\).*/\1/p' | head -1)
  LC=$(echo "$C_OUT" | sed -n 's/.*first-step loss \([0-9.]*\).*/\1/p')
  echo "first-step loss: torch $LT, crucible $LC (same weights and tokens: must agree)"
  VARIANTS=$(echo "$TORCH_OUT" | sed -n 's/^torch_best=\([^ ]*\) .*/\1/p')
  TC=$(echo "$TORCH_OUT" | grep "^torch $VARIANTS:" | sed -n 's/.*CPU time \([0-9.]*\) ms.*/\1/p')
  CC=$(echo "$C_OUT" | sed -n 's/^c_cpu_ms_per_step=\([0-9.]*\)$/\1/p')
  echo "round $r: CPU time per step torch/C = $(awk -v a="$TC" -v b="$CC" 'BEGIN { printf "%.2f", a / b }') ($TC vs $CC ms)"
  RATIO=$(awk -v c="$C" -v t="$T" 'BEGIN { printf "%.2f", c / t }')
  echo "round $r: C/torch = $RATIO ($C vs $T tokens/s)"
  RATIOS="$RATIOS $RATIO"
  r=$((r + 1))
done
MED=$(echo $RATIOS | tr ' ' '\n' | sort -n | awk '{a[NR]=$1} END { print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2 }')
echo "train_step ratio C/torch = $MED (median of rounds:$RATIOS; $THREADS threads, torch baseline $VARIANTS)"
