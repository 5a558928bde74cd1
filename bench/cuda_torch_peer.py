"""bench/cuda_torch_peer.py — the PyTorch peer numbers for bench/cuda_ops_bench.c, on
the same GPU: GEMM peak (fp32 without TF32, bf16), causal attention at MLA shapes
(torch SDPA), and a training step (forward + backward) of a transformers DeepseekV2
model shaped like DeepSeek-Coder-V2-Lite (hidden 2048, MLA without q-LoRA, 64 routed
experts top-6 + 2 shared, first layer dense) truncated to LAYERS layers, on 4096 packed
tokens in bf16. Random weights; timings are CUDA-event medians after warm-up.
Usage: python3 bench/cuda_torch_peer.py [layers] [tokens]"""
import sys
import time

import torch

LAYERS = int(sys.argv[1]) if len(sys.argv) > 1 else 2
TOKENS = int(sys.argv[2]) if len(sys.argv) > 2 else 4096
rows = []


def timed(fn, warm=2, reps=7):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b))
    ts.sort()
    return ts[len(ts) // 2]


def row(name, ms, rate, unit):
    rows.append((name, ms, rate, unit))
    print(f"  {name:<46} {ms:9.3f} ms {rate:9.2f} {unit}", flush=True)


dev = torch.device("cuda")
torch.backends.cuda.matmul.allow_tf32 = False
print("torch", torch.__version__, torch.cuda.get_device_name(0))
for dt, tag in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
    for (M, N, K) in ((8192, 8192, 8192), (TOKENS, 3072, 2048)):
        a = torch.randn(M, K, device=dev, dtype=dt)
        b = torch.randn(N, K, device=dev, dtype=dt)
        ms = timed(lambda: a @ b.T)
        row(f"torch gemm {tag} {M}x{N}x{K}", ms, 2 * M * N * K / ms / 1e9, "TFLOP/s")
        del a, b

H, dqk, dv = 16, 192, 128
pairs = TOKENS * (TOKENS + 1) / 2
for dt, tag in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
    try:
        q = torch.randn(1, H, TOKENS, dqk, device=dev, dtype=dt, requires_grad=True)
        k = torch.randn(1, H, TOKENS, dqk, device=dev, dtype=dt, requires_grad=True)
        v = torch.randn(1, H, TOKENS, dv, device=dev, dtype=dt, requires_grad=True)
        f = torch.nn.functional.scaled_dot_product_attention
        ms = timed(lambda: f(q, k, v, is_causal=True))
        row(f"torch sdpa fwd {tag} 1 seq H16 192/128", ms, 2 * pairs * H * (dqk + dv) / ms / 1e9, "TFLOP/s")
        o = f(q, k, v, is_causal=True)
        g = torch.randn_like(o)
        ms = timed(lambda: torch.autograd.grad(o, (q, k, v), g, retain_graph=True))
        row(f"torch sdpa bwd {tag} 1 seq H16 192/128", ms, 2 * pairs * H * (3 * dqk + 2 * dv) / ms / 1e9, "TFLOP/s")
        del q, k, v, o, g
    except Exception as ex:  # report, keep going
        print(f"  torch sdpa {tag}: failed: {ex}")

try:
    from transformers import DeepseekV2Config, DeepseekV2ForCausalLM

    cfg = DeepseekV2Config(vocab_size=102400, hidden_size=2048, intermediate_size=10944, moe_intermediate_size=1408,
                           num_hidden_layers=LAYERS, num_attention_heads=16, num_key_value_heads=16,
                           n_shared_experts=2, n_routed_experts=64, num_experts_per_tok=6, first_k_dense_replace=1,
                           kv_lora_rank=512, q_lora_rank=None, qk_nope_head_dim=128, qk_rope_head_dim=64,
                           v_head_dim=128, topk_method="greedy", norm_topk_prob=False, routed_scaling_factor=1.0,
                           n_group=1, topk_group=1, max_position_embeddings=16384)
    torch.manual_seed(0)
    model = DeepseekV2ForCausalLM(cfg).to(dev, torch.bfloat16)
    model.train()
    ids = torch.randint(0, 102400, (1, TOKENS), device=dev)

    def step():
        out = model(input_ids=ids, labels=ids)
        out.loss.backward()

    ms = timed(step, warm=2, reps=5)
    # Model FLOPs per token: 6 x active matmul params (embedding excluded, LM head included)
    # + causal attention 6 x pairs x H x (dqk + dv) per layer (forward 2, backward 4).
    D = 2048
    attn_p = D * H * dqk + D * (512 + 64) + 512 * H * (128 + dv) + H * dv * D
    dense_mlp = 3 * D * 10944
    moe_mlp = 8 * 3 * D * 1408 + D * 64
    active = LAYERS * attn_p + dense_mlp + (LAYERS - 1) * moe_mlp + D * 102400
    flops = 6 * TOKENS * active + LAYERS * 6 * pairs * H * (dqk + dv)
    tps = TOKENS / (ms / 1e3)
    row(f"transformers DeepseekV2 {LAYERS}L train step bf16", ms, tps, "tok/s")
    print(f"  model TFLOP/step {flops / 1e12:.3f}: {flops / ms / 1e9:.1f} TFLOP/s = MFU "
          f"{100 * flops / ms / 1e9 / 989:.1f}% of 989 (H100 SXM dense bf16)")
    print(f"  peak memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
except Exception as ex:
    print(f"  transformers DeepseekV2 step: failed: {type(ex).__name__}: {ex}")

print(f"\n{'op (PyTorch peer)':<48} {'ms':>10} {'rate':>10}")
for n, ms, r, u in rows:
    print(f"{n:<48} {ms:10.3f} {r:9.2f} {u}")
