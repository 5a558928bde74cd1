#!/usr/bin/env python3
"""Peer side of bench/safetensors_io.c: the PyPI `safetensors` package (Rust core) on the same
files, one process.

  safetensors_io_peer.py prepare DIR N_TENSORS NUMEL   DIR/peer_bf16.safetensors (BF16, seeded)
  safetensors_io_peer.py run DIR                       best-of-3 seconds as JSON:
      write_f32  save_file of DIR's F32 tensors (numpy) to DIR/peer_f32.safetensors
      read_f32   load_file(DIR/c_f32.safetensors) -> numpy fp32 arrays (what our reader produces)
      read_bf16  load_file(DIR/peer_bf16.safetensors) -> torch, .float() (BF16 -> fp32)
      bf16_bits  sum of the fp32 bit patterns of those converted values (checked by the C side)
"""
import json
import os
import sys
import time

import numpy as np
import torch
from safetensors.numpy import load_file as np_load, save_file as np_save
from safetensors.torch import load_file as t_load, save_file as t_save


def best(f, reps=3):
    b = 1e9
    for _ in range(reps):
        t0 = time.perf_counter()
        f()
        b = min(b, time.perf_counter() - t0)
    return b


def main():
    cmd, d = sys.argv[1], sys.argv[2]
    if cmd == "prepare":
        n, numel = int(sys.argv[3]), int(sys.argv[4])
        g = torch.Generator().manual_seed(0)
        ts = {f"model.layers.{i}.mlp.experts.0.up_proj.weight": torch.randn(numel, generator=g).to(torch.bfloat16)
              for i in range(n)}
        t_save(ts, os.path.join(d, "peer_bf16.safetensors"))
        return
    f32 = np_load(os.path.join(d, "c_f32.safetensors"))
    out = {
        "write_f32": best(lambda: np_save(f32, os.path.join(d, "peer_f32.safetensors"))),
        "read_f32": best(lambda: np_load(os.path.join(d, "c_f32.safetensors"))),
        "read_bf16": best(lambda: [v.float() for v in t_load(os.path.join(d, "peer_bf16.safetensors")).values()]),
    }
    conv = t_load(os.path.join(d, "peer_bf16.safetensors"))
    out["bf16_bits"] = int(sum(int(v.float().numpy().view(np.uint32).astype(np.uint64).sum()) for v in conv.values()))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
