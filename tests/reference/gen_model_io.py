"""Fixture for tests/cli/test_cmd_init_score.c: a tiny DeepseekV2 checkpoint written by
transformers itself (save_pretrained: BF16, sharded with an index, 5-digit shard names) and
the log-probabilities transformers computes for a few token sequences.  `crucible score`
on that directory must reproduce them: this checks model_load on HF-written files and the
score command against an independent implementation.

Run from the repository root:  python3 tests/reference/gen_model_io.py
  tests/fixtures/model_io/hf_tiny/      config.json, model-0000{1,2}-of-00002.safetensors, index
  tests/fixtures/model_io/score.json    {"sequences": [...], "logprobs": [[...], ...]}
"""
import json
import os
import shutil

import torch
from transformers import DeepseekV2Config, DeepseekV2ForCausalLM

OUT = "tests/fixtures/model_io"
cfg = json.load(open(os.path.join(OUT, "tiny_config.json")))
torch.manual_seed(0)
model = DeepseekV2ForCausalLM(DeepseekV2Config(**cfg)).to(torch.bfloat16)
d = os.path.join(OUT, "hf_tiny")
shutil.rmtree(d, ignore_errors=True)
model.save_pretrained(d, max_shard_size="40KB")
for extra in ("generation_config.json",):
    if os.path.exists(os.path.join(d, extra)):
        os.remove(os.path.join(d, extra))

# Reload in fp32 (BF16 values are exact in fp32) and score each sequence on its own.
ref = DeepseekV2ForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager").eval()
g = torch.Generator().manual_seed(1)
seqs = [[0, 5, 9, 13, 2], [7], [1, 2],
        torch.randint(0, cfg["vocab_size"], (24,), generator=g).tolist()]   # 24 > yarn original 16
lps = []
with torch.no_grad():
    for s in seqs:
        lg = ref(input_ids=torch.tensor([s])).logits[0].double()
        lp = torch.log_softmax(lg, -1)
        lps.append([lp[i, s[i + 1]].item() for i in range(len(s) - 1)])
with open(os.path.join(OUT, "score.json"), "w") as fh:
    json.dump({"sequences": seqs, "logprobs": lps}, fh)
