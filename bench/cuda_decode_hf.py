#!/usr/bin/env python3
"""bench/cuda_decode_hf.py — the transformers peer of bench/cuda_decode.c: decode throughput
of DeepseekV2ForCausalLM.generate on one GPU, DeepSeek-Coder-V2-Lite shape, bf16 weights,
random initialisation (transformers' own: N(0, 0.02), norms 1 — the same distribution as
model_init_random, not the same values).

usage: cuda_decode_hf.py --plan 1:27,64:27,256:19 [--prompt 1000] [--gen 1000]
                         [--experts DEFAULT|eager|grouped_mm|batched_mm] [--attn sdpa|eager]
                         [--out FILE.json]

--plan: SEQS:LAYERS pairs, as printed by `build/bench/cuda_decode --print-plan` (so both
sides run the same shapes). For each: SEQS distinct random prompts of --prompt tokens,
sampled (temperature 1, no top-k / top-p), --gen new tokens each with EOS off
(min_new_tokens = max_new_tokens), KV cache on (transformers' DynamicCache). Timed like the
C bench, synchronised wall clock: t1 = generate(max_new_tokens=1) (prefill + first token),
tN = generate(max_new_tokens=gen); decode tok/s = SEQS (gen - 1) / (tN - t1),
end-to-end tok/s = SEQS gen / tN. A shape that runs out of memory is recorded with its error.

Prints a line per run and writes (or prints last, without --out) one JSON object:
{"torch", "transformers", "device", "dtype", "prompt", "gen", "experts_implementation",
 "attn_implementation", "runs": [{"seqs", "layers", "t1_s", "tN_s", "decode_tok_s",
 "e2e_tok_s", "peak_gib"} or {"seqs", "layers", "error"}]}
"""
import argparse
import json
import sys
import time

import torch
import transformers
from transformers import DeepseekV2Config, DeepseekV2ForCausalLM


def lite_config(layers):
    # DeepSeek-Coder-V2-Lite's config.json values, truncated to `layers` layers.
    return DeepseekV2Config(
        vocab_size=102400, hidden_size=2048, intermediate_size=10944, moe_intermediate_size=1408,
        num_hidden_layers=layers, num_attention_heads=16, num_key_value_heads=16, n_shared_experts=2,
        n_routed_experts=64, num_experts_per_tok=6, first_k_dense_replace=1, kv_lora_rank=512,
        q_lora_rank=None, qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128, topk_method="greedy",
        norm_topk_prob=False, routed_scaling_factor=1.0, n_group=1, topk_group=1, rms_norm_eps=1e-6,
        max_position_embeddings=163840, rope_theta=10000,
        rope_scaling={"type": "yarn", "factor": 40, "original_max_position_embeddings": 4096, "beta_fast": 32,
                      "beta_slow": 1, "mscale": 0.707, "mscale_all_dim": 0.707},
        initializer_range=0.02, tie_word_embeddings=False, bos_token_id=100000, eos_token_id=100001)


def parse_plan(text):
    plan = []
    for item in text.split(","):
        seqs, layers = item.split(":")
        seqs, layers = int(seqs), int(layers)
        if not (1 <= seqs <= 4096 and 1 <= layers <= 27):
            raise ValueError(f"--plan: {item}: seqs 1..4096, layers 1..27")
        plan.append((seqs, layers))
    return plan


def build(layers, experts, attn, dev):
    cfg = lite_config(layers)
    kw = {"dtype": torch.bfloat16}
    if attn:
        kw["attn_implementation"] = attn
    if experts:
        kw["experts_implementation"] = experts
    torch.manual_seed(0)
    with dev:
        model = DeepseekV2ForCausalLM._from_config(cfg, **kw)
    return model.eval()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--plan", required=True)
    ap.add_argument("--prompt", type=int, default=1000)
    ap.add_argument("--gen", type=int, default=1000)
    ap.add_argument("--experts", default=None, help="transformers experts_implementation (default: its own)")
    ap.add_argument("--attn", default=None, help="attn_implementation (default: transformers' own, sdpa)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--device", default="cuda", help="cuda; cpu only to smoke-test this script on tiny shapes")
    a = ap.parse_args()
    if a.prompt < 1 or a.gen < 2:
        sys.exit("cuda_decode_hf: --prompt >= 1, --gen >= 2")
    plan = parse_plan(a.plan)
    cuda = a.device == "cuda"
    if cuda and not torch.cuda.is_available():
        sys.exit("cuda_decode_hf: no CUDA device: nothing measured")
    dev = torch.device(a.device)

    def sync():
        if cuda:
            torch.cuda.synchronize()

    out = {"torch": torch.__version__, "transformers": transformers.__version__,
           "device": torch.cuda.get_device_name(0) if cuda else "cpu", "dtype": "bfloat16", "prompt": a.prompt,
           "gen": a.gen, "runs": []}
    gen_kw = dict(do_sample=True, temperature=1.0, top_k=0, top_p=1.0, use_cache=True, eos_token_id=None,
                  pad_token_id=0)
    model, model_layers = None, 0
    for seqs, layers in plan:
        run = {"seqs": seqs, "layers": layers}
        try:
            if model is None or model_layers != layers:
                model = None
                if cuda:
                    torch.cuda.empty_cache()
                t = time.perf_counter()
                model = build(layers, a.experts, a.attn, dev)
                model_layers = layers
                out["experts_implementation"] = str(getattr(model.config, "_experts_implementation", "?"))
                out["attn_implementation"] = str(getattr(model.config, "_attn_implementation", "?"))
                print(f"  model: {layers} layers, {sum(p.numel() for p in model.parameters()) / 1e9:.2f} B params "
                      f"bf16, built in {time.perf_counter() - t:.1f} s (experts {out['experts_implementation']}, "
                      f"attention {out['attn_implementation']})", file=sys.stderr, flush=True)
            g = torch.Generator(device=dev).manual_seed(seqs)
            ids = torch.randint(0, 100000, (seqs, a.prompt), device=dev, generator=g)
            mask = torch.ones_like(ids)
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            with torch.no_grad():
                model.generate(ids[:1, :16], attention_mask=mask[:1, :16], max_new_tokens=4, min_new_tokens=4, **gen_kw)
                sync()
                t = time.perf_counter()
                model.generate(ids, attention_mask=mask, max_new_tokens=1, min_new_tokens=1, **gen_kw)
                sync()
                t1 = time.perf_counter() - t
                t = time.perf_counter()
                res = model.generate(ids, attention_mask=mask, max_new_tokens=a.gen, min_new_tokens=a.gen, **gen_kw)
                sync()
                tn = time.perf_counter() - t
            if tuple(res.shape) != (seqs, a.prompt + a.gen):
                raise RuntimeError(f"generate returned shape {tuple(res.shape)}")
            run.update(t1_s=t1, tN_s=tn, decode_tok_s=seqs * (a.gen - 1) / (tn - t1) if tn > t1 else 0.0,
                       e2e_tok_s=seqs * a.gen / tn,
                       peak_gib=torch.cuda.max_memory_allocated() / 2**30 if cuda else 0.0)
            print(f"  [{seqs} seqs, {layers} layers] t1 {t1:.2f} s, tN {tn:.2f} s: decode "
                  f"{run['decode_tok_s']:.1f} tok/s, end-to-end {run['e2e_tok_s']:.1f} tok/s, peak "
                  f"{run['peak_gib']:.1f} GiB", file=sys.stderr, flush=True)
        except torch.cuda.OutOfMemoryError as ex:
            run["error"] = f"out of memory: {str(ex).splitlines()[0]}"
            print(f"  [{seqs} seqs, {layers} layers] {run['error']}", file=sys.stderr, flush=True)
            model, model_layers = None, 0
            if cuda:
                torch.cuda.empty_cache()
        out["runs"].append(run)
    text = json.dumps(out)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    main()
