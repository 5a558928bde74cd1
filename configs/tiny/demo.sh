#!/bin/sh
# make demo — the embedded default, on CPU, with nothing downloaded:
#   a byte-level BPE tokenizer trained on the built-in tasks, a tiny DeepSeek-V2-style MoE
#   (configs/tiny/model.json), SFT on the training tasks' reference solutions, held-out
#   pass@1 (sampled, n = 8 per task, temperature 1), GRPO with sandbox rewards on the
#   training tasks, held-out pass@1 again, and the run report.
# The last line is "held-out pass@1: BEFORE -> AFTER".
set -eu
B=${CRUCIBLE:-build/crucible}
C=configs/tiny
RUN=${RUN:-runs/demo}
rm -rf "$RUN"
mkdir -p "$RUN"
t0=$(date +%s)
echo "== tokenizer"
$B tokenizer train --corpus $C/corpus.txt --vocab-size 576 --out "$RUN/tokenizer.json" >/dev/null
echo "== model"
$B init --config $C/model.json --tokenizer "$RUN/tokenizer.json" --out "$RUN/base" --seed 1 >/dev/null
echo "== sft"
$B sft --config $C/sft.json --model "$RUN/base" --data $C/sft.jsonl --out "$RUN/sft"
pass1() { sed -n 's/.*"pass@1":\([-0-9.eE+]*\).*/\1/p'; }
echo "== eval before GRPO"
BEFORE=$($B eval --config $C/eval.json --model "$RUN/sft/final" --tasks $C/tasks_heldout.jsonl | tee "$RUN/eval_before.json" | pass1)
echo "held-out pass@1 after SFT: $BEFORE"
echo "== grpo"
$B grpo --config $C/grpo.json --model "$RUN/sft/final" --tasks $C/tasks_train.jsonl --out "$RUN/grpo"
echo "== eval after GRPO"
AFTER=$($B eval --config $C/eval.json --model "$RUN/grpo/final" --tasks $C/tasks_heldout.jsonl | tee "$RUN/eval_after.json" | pass1)
$B report "$RUN/grpo"
echo "demo: $(( $(date +%s) - t0 )) s; run in $RUN (run.db, tb/, checkpoints, report.html)"
printf 'held-out pass@1: %.3f -> %.3f\n' "$BEFORE" "$AFTER"
