#!/usr/bin/env python3
"""Peer for bench/rollout: Hugging Face transformers `generate` (with its KV cache) on the
same checkpoint, same prompt, same number of new tokens, same thread count.

usage: rollout_hf.py MODEL_DIR --prompt 1,2,3 --new N --groups 1,8,64 --threads 2
Prints one JSON line: {"tok_s": {"1": x, ...}, "tok_per_cpu_s": {...}, "greedy": [ids...], "torch": ver, "transformers": ver}.
Sampling runs use do_sample=True, temperature 1 (no top-k/top-p), min_new_tokens = N so no
sample stops early; the greedy run gives the first N greedy ids for a correctness check.
"""
import argparse
import json
import time

import torch
import transformers
from transformers import AutoModelForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--prompt", required=True)
    ap.add_argument("--new", type=int, required=True)
    ap.add_argument("--groups", default="1,8,64")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32).eval()
    ids = torch.tensor([[int(x) for x in a.prompt.split(",")]], dtype=torch.long)
    gen_kw = dict(max_new_tokens=a.new, min_new_tokens=a.new, pad_token_id=0, eos_token_id=None,
                  use_cache=True, top_k=None, top_p=None)
    with torch.no_grad():
        greedy = model.generate(ids, do_sample=False, **gen_kw)[0, ids.shape[1]:].tolist()
        model.generate(ids, do_sample=True, temperature=1.0, **dict(gen_kw, max_new_tokens=4, min_new_tokens=4))
        out, cpu = {}, {}
        for g in [int(x) for x in a.groups.split(",")]:
            batch = ids.repeat(g, 1)
            t, c = time.perf_counter(), time.process_time()
            res = model.generate(batch, do_sample=True, temperature=1.0, **gen_kw)
            dt, dc = time.perf_counter() - t, time.process_time() - c
            assert res.shape == (g, ids.shape[1] + a.new)
            out[str(g)] = g * a.new / dt
            cpu[str(g)] = g * a.new / dc
    print(json.dumps({"tok_s": out, "tok_per_cpu_s": cpu, "greedy": greedy, "torch": torch.__version__,
                      "transformers": transformers.__version__}))


if __name__ == "__main__":
    main()
