"""Fixtures for tests/core/test_safetensors.c, written by the PyPI `safetensors` package
(the format's reference implementation), so that our reader is checked against files it
did not write.  Run from the repository root:  python3 tests/reference/gen_safetensors.py

  tests/fixtures/safetensors/dtypes.safetensors   one tensor per dtype, values listed below
  tests/fixtures/safetensors/sharded/             model.safetensors.index.json + 2 shards
"""
import json
import os

import numpy as np
import torch
from safetensors.numpy import save_file as np_save
from safetensors.torch import save_file as torch_save

OUT = "tests/fixtures/safetensors"
os.makedirs(OUT + "/sharded", exist_ok=True)

f = [1.0, -2.5, 0.0, -0.0, 3.140625, 65504.0, 1e-3, float("inf")]
tensors = {
    "f64": torch.tensor([1.0, -2.5, 1e-300, 3.0e38], dtype=torch.float64),
    "f32": torch.tensor(f, dtype=torch.float32).reshape(2, 4),
    # BF16 from fp32 by torch (round to nearest even): 1.00390625 is a tie -> 1.0
    "bf16": torch.tensor([1.0, -2.5, 1.00390625, 1.01171875, 9.183549615799121e-41, float("-inf"),
                          float("nan"), 3.0e38], dtype=torch.float32).to(torch.bfloat16),
    # F16: 2^-24 (smallest subnormal), largest subnormal 1023*2^-24, 65504, inf, nan
    "f16": torch.tensor([1.0, -2.5, 5.960464477539063e-08, 6.097555160522461e-05, 65504.0, float("inf"),
                         float("nan"), -0.0], dtype=torch.float32).to(torch.float16),
    "i64": torch.tensor([[0, -1], [2**40, -2**62]], dtype=torch.int64),
    "i32": torch.tensor([7, -7, 2**31 - 1], dtype=torch.int32),
    "i16": torch.tensor([-32768, 32767], dtype=torch.int16),
    "i8": torch.tensor([-128, 127, 0], dtype=torch.int8),
    "u8": torch.tensor([0, 255, 17], dtype=torch.uint8),
    "bool": torch.tensor([True, False, True], dtype=torch.bool),
    "scalar": torch.tensor(4.5, dtype=torch.float32),
    "empty": torch.zeros(0, 3, dtype=torch.float32),
}
torch_save(tensors, OUT + "/dtypes.safetensors", metadata={"format": "pt", "note": "crucible fixture"})

# Sharded: two shards, names and shapes like a (tiny) DeepseekV2 layer.
rng = np.random.default_rng(1234)
shard1 = {"model.embed_tokens.weight": rng.standard_normal((5, 4)).astype(np.float32),
          "model.layers.0.input_layernorm.weight": rng.standard_normal(4).astype(np.float32)}
shard2 = {"lm_head.weight": rng.standard_normal((5, 4)).astype(np.float32),
          "model.norm.weight": rng.standard_normal(4).astype(np.float32)}
np_save(shard1, OUT + "/sharded/model-00001-of-000002.safetensors", metadata={"format": "pt"})
np_save(shard2, OUT + "/sharded/model-00002-of-000002.safetensors", metadata={"format": "pt"})
wm = {k: "model-00001-of-000002.safetensors" for k in shard1}
wm.update({k: "model-00002-of-000002.safetensors" for k in shard2})
total = sum(v.nbytes for v in list(shard1.values()) + list(shard2.values()))
with open(OUT + "/sharded/model.safetensors.index.json", "w") as fh:
    json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(wm.items()))}, fh, indent=2)
# Expected values for the C test (float32 printed exactly).
with open(OUT + "/sharded/expected.json", "w") as fh:
    json.dump({k: [float(x) for x in v.ravel()] for k, v in {**shard1, **shard2}.items()}, fh)
