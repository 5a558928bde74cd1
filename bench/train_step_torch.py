#!/usr/bin/env python3
"""PyTorch peer of bench/train_step.c: one training step (forward + backward + AdamW) of a small
DeepseekV2 MoE model in transformers, eager mode (no torch.compile), float32, on the CPU.

  --write DIR   also write the model (config.json + model.safetensors under the HF checkpoint
                names, experts split per expert) and the batch (DIR/batch.safetensors) so that
                bench/train_step.c times the very same weights, tokens and routing.

Step = zero grads; forward of one packed batch (sequences run as a [S, T] batch, all of equal
length, so no padding); loss = -mean_t logp[t] + sum_l aux_l (the spec §6.4 sequence aux loss,
computed from the router's outputs with hooks, the same objective the C step uses with
dlogp = -1/N and aux_weight = 1); backward; torch.optim.AdamW step (decay on >= 2-D tensors).
Prints one line per torch variant and a last line `torch_tokens_per_s=<best variant>`; the
baseline is the fastest of transformers' attention/experts implementations tried.
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import torch
import transformers
from safetensors.torch import save_file
from transformers import DeepseekV2Config, DeepseekV2ForCausalLM

# The benchmark model: hidden 256, 4 layers (1 dense + 3 MoE), 16 routed experts top-4, 2 shared.
BENCH_CONFIG = dict(
    vocab_size=4096, hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
    num_key_value_heads=4, q_lora_rank=None, kv_lora_rank=64, qk_nope_head_dim=32,
    qk_rope_head_dim=16, v_head_dim=32, intermediate_size=1024, moe_intermediate_size=128,
    n_routed_experts=16, n_shared_experts=2, num_experts_per_tok=4, first_k_dense_replace=1,
    moe_layer_freq=1, topk_method="greedy", n_group=1, topk_group=1, routed_scaling_factor=1.0,
    norm_topk_prob=False, scoring_func="softmax", aux_loss_alpha=0.001, seq_aux=True,
    hidden_act="silu", rms_norm_eps=1e-6, rope_theta=10000.0,
    rope_scaling={"type": "yarn", "factor": 40, "original_max_position_embeddings": 4096,
                  "beta_fast": 32, "beta_slow": 1, "mscale": 0.707, "mscale_all_dim": 0.707},
    max_position_embeddings=163840, bos_token_id=0, eos_token_id=1, tie_word_embeddings=False,
    attention_bias=False, attention_dropout=0.0, initializer_range=0.02)
ADAMW = dict(lr=1e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)


def build(attn, experts, seed):
    cfg = DeepseekV2Config(attn_implementation=attn, experts_implementation=experts, **BENCH_CONFIG)
    torch.manual_seed(seed)
    m = DeepseekV2ForCausalLM(cfg).float()      # transformers' own init: N(0, 0.02), norms 1
    m.train()
    return cfg, m


def write_model(m, cfg, d, tokens, seqs, seq_len):
    os.makedirs(d, exist_ok=True)
    Ie = cfg.moe_intermediate_size
    out = {}
    for k, v in m.state_dict().items():
        v = v.detach().float().contiguous()
        if k.endswith("mlp.experts.gate_up_proj"):
            for e in range(v.shape[0]):
                out[f"{k[:-12]}{e}.gate_proj.weight"] = v[e, :Ie].contiguous()
                out[f"{k[:-12]}{e}.up_proj.weight"] = v[e, Ie:].contiguous()
        elif k.endswith("mlp.experts.down_proj"):
            for e in range(v.shape[0]):
                out[f"{k[:-9]}{e}.down_proj.weight"] = v[e].contiguous()
        else:
            out[k] = v
    save_file(out, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    js = json.loads(cfg.to_json_string())
    js.pop("dtype", None)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(js, f, indent=2, sort_keys=True)
    save_file({"tokens": tokens.reshape(-1).to(torch.int64).contiguous(),
               "seq_len": torch.tensor([seq_len], dtype=torch.int64),
               "n_seqs": torch.tensor([seqs], dtype=torch.int64)},
              os.path.join(d, "batch.safetensors"))


def make_step(m, cfg, ids):
    """Returns a closure running one training step and the AdamW optimizer it uses."""
    E, K, alpha = cfg.n_routed_experts, cfg.num_experts_per_tok, BENCH_CONFIG["aux_loss_alpha"]
    S, T = ids.shape
    recs = []
    for layer in m.model.layers:
        gate = getattr(layer.mlp, "gate", None)
        if gate is not None:
            gate.register_forward_hook(lambda mod, inp, out: recs.append(out))
    decay = [p for p in m.parameters() if p.ndim >= 2]
    nodecay = [p for p in m.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay}, {"params": nodecay, "weight_decay": 0.0}], **ADAMW)
    inp, tgt = ids, torch.roll(ids, -1, 1)
    n = S * T

    def step():
        recs.clear()
        opt.zero_grad(set_to_none=True)
        logits = m(input_ids=inp, use_cache=False).logits
        lp = torch.log_softmax(logits.float(), -1).gather(-1, tgt[..., None])[..., 0]
        loss = -lp.sum() / n
        for router_logits, _, idx in recs:          # spec §6.4, seq_aux: per sequence, mean over S
            s = router_logits.softmax(-1, dtype=torch.float32).view(S, T, E)
            cnt = torch.zeros(S, E).scatter_add_(1, idx.view(S, T * K), torch.ones(S, T * K))
            f = (cnt * E / (K * T)).detach()
            loss = loss + alpha * (f * s.mean(1)).sum(1).mean()
        loss.backward()
        opt.step()
        return loss.item()
    return step


def time_variant(attn, experts, ids, steps, warmup, seed):
    try:
        cfg, m = build(attn, experts, seed)
    except Exception as ex:                          # implementation unavailable on this install
        return None, f"{attn}/{experts}: unavailable ({type(ex).__name__}: {ex})"
    step = make_step(m, cfg, ids)
    try:
        loss0 = step()
        for _ in range(warmup - 1):
            step()
    except Exception as ex:
        return None, f"{attn}/{experts}: failed ({type(ex).__name__}: {ex})"
    ts, cs = [], []
    for _ in range(steps):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        ts.append(time.perf_counter() - t0)
        cs.append(time.process_time() - c0)
    med = statistics.median(ts)
    return med, f"torch {attn}/{experts}: median {med * 1e3:.1f} ms/step over {steps} " \
                f"(min {min(ts) * 1e3:.1f}), {ids.numel() / med:.0f} tokens/s; CPU time " \
                f"{statistics.median(cs) * 1e3:.1f} ms/step; first-step loss {loss0:.4f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first (>= 1)")
    ap.add_argument("--seqs", type=int, default=1)
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--write", metavar="DIR", help="write model + batch for bench/train_step.c")
    ap.add_argument("--variants", default="sdpa/grouped_mm,sdpa/eager,eager/eager",
                    help="comma-separated attention/experts implementations to time")
    a = ap.parse_args()
    a.warmup = max(a.warmup, 1)
    torch.set_default_dtype(torch.float32)
    torch.set_num_threads(a.threads)
    g = torch.Generator().manual_seed(a.seed + 1)
    ids = torch.randint(2, BENCH_CONFIG["vocab_size"], (a.seqs, a.seq_len), generator=g)
    if a.write:
        cfg, m = build("eager", "eager", a.seed)
        write_model(m, cfg, a.write, ids, a.seqs, a.seq_len)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
          f"threads {torch.get_num_threads()}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(default)')}, "
          f"batch {a.seqs}x{a.seq_len}", flush=True)
    best = None
    for v in a.variants.split(","):
        attn, experts = v.split("/")
        med, line = time_variant(attn, experts, ids, a.steps, a.warmup, a.seed)
        print(line, flush=True)
        if med is not None and (best is None or med < best[0]):
            best = (med, v)
    if best is None:
        sys.exit("no torch variant ran")
    print(f"torch_best={best[1]} torch_tokens_per_s={ids.numel() / best[0]:.1f}")


if __name__ == "__main__":
    main()
