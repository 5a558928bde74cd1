#!/bin/sh
# tests/cuda/cuda_check.sh — the body of `make cuda-check`: runs the CUDA op tests
# (tests/cuda, against the CPU backend), the CUDA op benchmark, the training-step
# benchmark, the decode benchmark (bench/cuda_decode.c) with its transformers peer
# (bench/cuda_decode_hf.py, same shapes), the PyTorch op/training peer when PyTorch with
# CUDA is importable, and compute-sanitizer (memcheck, then racecheck) over the CUDA
# tests; prints the result tables and, last, one status table of every step.
#   TESTS_BIN   test runner (default build/crucible_tests)
#   BENCH_BIN   op benchmark (default build/bench/cuda_ops_bench)
#   TRAIN_BIN   training-step benchmark (default build/bench/cuda_train_step)
#   DECODE_BIN  decode benchmark (default build/bench/cuda_decode)
#   DECODE_MOE  cuda_decode --moe: auto (default), slots (the small-batch experts alone) or
#               indexed (model/cuda/moe_indexed.cu, CRUCIBLE_CUDA_MOE_SMALL=indexed)
#   DECODE_GRAPHS  1: each decode shape also with recorded steps (CUDA graphs,
#               CRUCIBLE_CUDA_GRAPHS=1, model/cuda/graph.cu): cuda_decode --variants, a row
#               of its own in the decode table, same model and peer
#   DECODE_VARIANTS  cuda_decode --variants (no spaces), e.g.
#               "CRUCIBLE_CUDA_DECODE_BF16=1;CRUCIBLE_CUDA_DECODE_BF16=1,CRUCIBLE_CUDA_GRAPHS=1"
#   DECODE_LAYERS / DECODE_SEQS / DECODE_PROMPT / DECODE_GEN  its shape (default 27 layers,
#               1,64,256 sequences, 256 prompt + 128 generated tokens: a few minutes; the
#               issue's full run is DECODE_PROMPT=1000 DECODE_GEN=1000)
#   SANITIZER   compute-sanitizer binary (default: from PATH or /usr/local/cuda*/bin);
#               SANITIZE_TOOLS (default "memcheck racecheck")
#   CLI_BIN     the crucible CLI (default build/crucible) for the end-to-end demo step:
#               configs/tiny/demo.sh with --device cuda (CRUCIBLE_DEVICE=cuda), its last line
#               "held-out pass@1: BEFORE -> AFTER" compared with the CPU run's in README
#   STEPS       which steps to run (default "tests bench train decode sanitize demo"): a
#               lent machine limits one command to 10 minutes, so the runbook splits them
#   OUT         folder for the full logs (default build/cuda_check)
# Exit status: that of the tests, or 1 when compute-sanitizer reported errors. On a
# machine without a GPU nothing runs on a GPU: the tests report SKIP, every other step
# says "skipped: no GPU", and the status table says so. On the lent GPU machines (no
# OpenBLAS/cJSON/... there) run the binaries linked by tests/cuda/build_device.sh:
# TESTS_BIN=build/cuda_dev/crucible_cuda_tests BENCH_BIN=build/cuda_dev/cuda_ops_bench
# TRAIN_BIN=build/cuda_dev/cuda_train_step DECODE_BIN=build/cuda_dev/cuda_decode
# CLI_BIN=build/cuda_dev/crucible.
set -u
TESTS_BIN=${TESTS_BIN:-build/crucible_tests}
BENCH_BIN=${BENCH_BIN:-build/bench/cuda_ops_bench}
TRAIN_BIN=${TRAIN_BIN:-build/bench/cuda_train_step}
DECODE_BIN=${DECODE_BIN:-build/bench/cuda_decode}
DECODE_LAYERS=${DECODE_LAYERS:-27}
DECODE_SEQS=${DECODE_SEQS:-1,64,256}
DECODE_PROMPT=${DECODE_PROMPT:-256}
DECODE_GEN=${DECODE_GEN:-128}
SANITIZE_TOOLS=${SANITIZE_TOOLS:-memcheck racecheck}
CLI_BIN=${CLI_BIN:-build/crucible}
STEPS=${STEPS:-tests bench train decode sanitize demo}
want() { case " $STEPS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
OUT=${OUT:-build/cuda_check}
mkdir -p "$OUT"
for d in /usr/local/cuda/lib64 $(python3 -c 'import nvidia.cublas, os; print(os.path.dirname(nvidia.cublas.__file__) + "/lib")' 2>/dev/null); do
    LD_LIBRARY_PATH=${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$d
done
export LD_LIBRARY_PATH
if [ -z "${SANITIZER:-}" ]; then
    SANITIZER=$(command -v compute-sanitizer 2>/dev/null || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
fi
gpu=$(nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv,noheader 2>/dev/null)
echo "cuda-check: GPU: ${gpu:-none visible}"
rc=0
if want tests; then
    "$TESTS_BIN" cuda_ > "$OUT/tests.log" 2>&1; rc=$?
else
    echo "not requested (STEPS)" > "$OUT/tests.log"
fi
grep -E "FAIL|SKIP:" "$OUT/tests.log" | sort | uniq -c | head -40
torch_cuda=0
python3 -c 'import torch, sys; sys.exit(not torch.cuda.is_available())' 2>/dev/null && torch_cuda=1
# status of each step, for the table printed last
st_ops="skipped: no GPU" st_train="skipped: no GPU" st_peer="skipped: no GPU" st_decode="skipped: no GPU"
st_dpeer="skipped: no GPU" st_memcheck="skipped: no GPU" st_racecheck="skipped: no GPU" st_demo="skipped: no GPU"
san_rc=0
# st_of LOG EXIT [WHAT]: the status of a benchmark run from its exit status and log
st_of() {
    if [ "$2" != 0 ]; then echo "FAILED (exit $2, $1)"
    elif grep -q "nothing measured" "$1"; then echo "NOT RUN: the binary saw no usable CUDA device ($1)"
    else echo "ran${3:+ ($3)}"; fi
}
if [ -n "$gpu" ]; then
  for f in bench train peer decode decode_peer memcheck racecheck demo_cuda; do
      echo "not requested (STEPS)" > "$OUT/$f.log"
  done
  st_ops="not requested (STEPS)" st_train=$st_ops st_peer=$st_ops st_decode=$st_ops st_dpeer=$st_ops
  st_memcheck=$st_ops st_racecheck=$st_ops st_demo=$st_ops
  if want bench; then
    "$BENCH_BIN" > "$OUT/bench.log" 2>&1; st_ops=$(st_of "$OUT/bench.log" $?)
  fi
  if want train; then
    "$TRAIN_BIN" 2 4096 > "$OUT/train.log" 2>&1; st_train=$(st_of "$OUT/train.log" $?)
    if [ $torch_cuda = 1 ]; then
        PYTHONUNBUFFERED=1 timeout 300 python3 bench/cuda_torch_peer.py 2 4096 > "$OUT/peer.log" 2>&1 &&
            st_peer=ran || st_peer="FAILED ($?, $OUT/peer.log)"
    else
        echo "PyTorch with CUDA not importable: peer skipped" > "$OUT/peer.log"
        st_peer="skipped: PyTorch with CUDA not importable"
    fi
  fi
  if want decode; then
    # Decode: the shapes that fit this GPU, the transformers peer on exactly those, then
    # ours with the peer's JSON (ratios from this run).
    dargs="--layers $DECODE_LAYERS --seqs $DECODE_SEQS --prompt $DECODE_PROMPT --gen $DECODE_GEN${DECODE_MOE:+ --moe $DECODE_MOE}"
    dvar="${DECODE_VARIANTS:-}"
    [ "${DECODE_GRAPHS:-0}" = 1 ] && dvar="${dvar:+$dvar;}CRUCIBLE_CUDA_GRAPHS=1"
    [ -n "$dvar" ] && dargs="$dargs --variants $dvar"
    plan=$("$DECODE_BIN" $dargs --print-plan 2> "$OUT/decode_plan.log"); prc=$?
    peer_arg=""
    rm -f "$OUT/decode_peer.json"
    if [ $prc != 0 ]; then
        st_dpeer="skipped: cuda_decode --print-plan failed (exit $prc, $OUT/decode_plan.log)"
    elif [ -z "$plan" ]; then
        st_dpeer="skipped: no decode shape fits this GPU"
    elif [ $torch_cuda = 1 ]; then
        PYTHONUNBUFFERED=1 timeout 1500 python3 bench/cuda_decode_hf.py --plan "$plan" --prompt "$DECODE_PROMPT" \
            --gen "$DECODE_GEN" --out "$OUT/decode_peer.json" > "$OUT/decode_peer.log" 2>&1 &&
            st_dpeer="ran (plan $plan)" || st_dpeer="FAILED ($?, $OUT/decode_peer.log)"
        [ -s "$OUT/decode_peer.json" ] && peer_arg="--peer $OUT/decode_peer.json"
    else
        st_dpeer="skipped: PyTorch with CUDA not importable"
    fi
    timeout 1800 "$DECODE_BIN" $dargs $peer_arg --out "$OUT/decode.json" > "$OUT/decode.log" 2>&1
    st_decode=$(st_of "$OUT/decode.log" $? "$DECODE_PROMPT + $DECODE_GEN tokens")
  fi
  if want demo; then
    # the main job end to end on the GPU: tokenizer, init, SFT, eval, GRPO with sandbox
    # rewards, eval, report, every model command with --device cuda
    t0=$(date +%s)
    CRUCIBLE="$CLI_BIN" CRUCIBLE_DEVICE=cuda RUN="$OUT/demo_cuda" timeout 1200 sh configs/tiny/demo.sh \
        > "$OUT/demo_cuda.log" 2>&1; drc=$?
    dline=$(grep "^held-out pass@1:" "$OUT/demo_cuda.log" | tail -1)
    if [ $drc = 0 ] && [ -n "$dline" ]; then st_demo="$dline ($(( $(date +%s) - t0 )) s; CPU: see README)"
    else st_demo="FAILED (exit $drc, $OUT/demo_cuda.log)"; fi
  fi

    # compute-sanitizer over the CUDA tests (each test is a forked child: follow them all)
  if want sanitize; then
    st_memcheck="not requested (SANITIZE_TOOLS)" st_racecheck="not requested (SANITIZE_TOOLS)"
    for tool in $SANITIZE_TOOLS; do
        log="$OUT/$tool.log"
        if [ -z "$SANITIZER" ]; then
            echo "compute-sanitizer not found (PATH, /usr/local/cuda*/bin): $tool NOT run" > "$log"
            st="NOT RUN: compute-sanitizer not found"
        else
            CRUCIBLE_TEST_TIMEOUT=1500 timeout 1800 "$SANITIZER" --tool "$tool" --target-processes all \
                --error-exitcode 86 "$TESTS_BIN" cuda_ > "$log" 2>&1; src=$?
            # memcheck: "ERROR SUMMARY: N errors"; racecheck: "RACECHECK SUMMARY: H hazards
            # displayed (N errors, W warnings)"; one summary per process
            nerr=$(sed -n 's/.*ERROR SUMMARY: \([0-9][0-9]*\) error.*/\1/p; s/.*RACECHECK SUMMARY:.*(\([0-9][0-9]*\) error.*/\1/p' "$log" |
                awk '{s += $1} END {print s + 0}')
            nsum=$(grep -c "ERROR SUMMARY\|RACECHECK SUMMARY" "$log")
            tests_line=$(grep -E "^[0-9]+ passed" "$log" | tail -1)
            if [ $src = 124 ]; then st="TIMED OUT after 1800 s ($log)"; san_rc=1
            elif [ "$nerr" != 0 ] || [ $src = 86 ]; then st="$nerr ERROR(S) ($log)"; san_rc=1
            elif [ "$nsum" = 0 ]; then st="FAILED: no error summary, exit $src ($log)"; san_rc=1
            else st="0 errors in $nsum process(es); tests: ${tests_line:-?}"
            fi
        fi
        case $tool in memcheck) st_memcheck=$st ;; racecheck) st_racecheck=$st ;; esac
    done
  fi
else
    for f in bench train peer decode decode_peer memcheck racecheck demo_cuda; do
        echo "no GPU visible: $f NOT run" > "$OUT/$f.log"
    done
fi
echo
echo "== results (logs in $OUT) =="
echo "tests/cuda:"
grep -E "^\[ (OK|FAIL|SKIP)" "$OUT/tests.log" | sed 's/^/  /'
tests_last=$(tail -1 "$OUT/tests.log")
echo "  $tests_last"
echo
sed -n '/^op (CUDA/,$p; /nothing measured\|skipped\|NOT run/p' "$OUT/bench.log"
echo
cat "$OUT/train.log"
echo
sed -n '/MFU\|peak memory\|failed\|skipped\|NOT run/p; /^op (PyTorch/,$p' "$OUT/peer.log"
echo
echo "decode (bench/cuda_decode, peer bench/cuda_decode_hf.py):"
sed -n '/^  device\|^  bandwidth\|^  NOTE\|^  WARNING\|^  peer\|recorded steps\|FAILED\|nothing measured\|NOT run/p; /^seqs /,$p' "$OUT/decode.log"
echo
echo "demo (configs/tiny/demo.sh, --device cuda):"
tail -3 "$OUT/demo_cuda.log" | sed 's/^/  /'
echo
echo "== cuda-check status =="
if [ -z "$gpu" ]; then
    echo "NO GPU visible: nothing ran on a GPU. The CUDA tests below report SKIP; no benchmark, peer or"
    echo "compute-sanitizer pass was run."
fi
printf '%-28s %s\n' "step" "result"
printf '%-28s %s\n' "tests/cuda (cuda_*)" "$tests_last (exit $rc)"
printf '%-28s %s\n' "cuda_ops_bench" "$st_ops"
printf '%-28s %s\n' "cuda_train_step" "$st_train"
printf '%-28s %s\n' "PyTorch ops/train peer" "$st_peer"
printf '%-28s %s\n' "cuda_decode" "$st_decode"
printf '%-28s %s\n' "transformers decode peer" "$st_dpeer"
printf '%-28s %s\n' "compute-sanitizer memcheck" "$st_memcheck"
printf '%-28s %s\n' "compute-sanitizer racecheck" "$st_racecheck"
printf '%-28s %s\n' "demo --device cuda" "$st_demo"
[ $rc = 0 ] && rc=$san_rc
exit $rc
