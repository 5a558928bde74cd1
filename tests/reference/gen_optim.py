"""Fixtures for tests/model/test_adamw.c: torch.optim.AdamW trajectories and transformers'
cosine-with-min-lr schedule.  Run from the repository root:
    python3 tests/reference/gen_optim.py
  tests/fixtures/optim/adamw.safetensors: for two parameter tensors (a 2-D "w" that is
    decayed and a 1-D "n" that is not, as in our AdamW), the initial values p0_*, the
    gradients g{k}_* fed at step k = 1..5, and the parameters after each step p{k}_*;
    the hyper-parameters are in the metadata.
  tests/fixtures/optim/schedule.json: lr at steps 0..total+5 for two settings.
"""
import json
import os

import torch
from safetensors.torch import save_file
from transformers import get_cosine_with_min_lr_schedule_with_warmup

OUT = "tests/fixtures/optim"
os.makedirs(OUT, exist_ok=True)
torch.manual_seed(0)
hp = dict(lr=3e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
# Small initial values so that fp32 parameters resolve each update to ~1e-6 relative.
w = torch.randn(6, 5) * 1e-3
n = torch.randn(7) * 1e-3
out = {"p0_w": w.clone(), "p0_n": n.clone()}
pw, pn = torch.nn.Parameter(w.clone()), torch.nn.Parameter(n.clone())
opt = torch.optim.AdamW([{"params": [pw], "weight_decay": hp["weight_decay"]},
                         {"params": [pn], "weight_decay": 0.0}],
                        lr=hp["lr"], betas=hp["betas"], eps=hp["eps"], foreach=False)
lrs = [3e-3, 2e-3, 1e-3, 5e-4, 0.0]
for k in range(1, 6):
    gw = torch.randn(6, 5) * (10.0 if k == 2 else 1.0)
    gn = torch.randn(7) * (1e-4 if k == 3 else 1.0)
    for g in opt.param_groups:
        g["lr"] = lrs[k - 1]
    pw.grad, pn.grad = gw.clone(), gn.clone()
    opt.step()
    out.update({f"g{k}_w": gw, f"g{k}_n": gn, f"p{k}_w": pw.detach().clone(), f"p{k}_n": pn.detach().clone()})
save_file(out, OUT + "/adamw.safetensors",
          metadata={"betas": "0.9,0.95", "eps": "1e-8", "weight_decay": "0.1", "lrs": ",".join(map(repr, lrs))})

sched = []
for warmup, total, lr_max, min_ratio in [(10, 100, 1e-3, 0.1), (0, 20, 2e-5, 0.0)]:
    o = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr_max)
    s = get_cosine_with_min_lr_schedule_with_warmup(o, warmup, total, min_lr_rate=min_ratio)
    vals = []
    for step in range(total + 1):
        vals.append(o.param_groups[0]["lr"])
        o.step()
        s.step()
    sched.append({"warmup": warmup, "total": total, "lr_max": lr_max, "min_lr_ratio": min_ratio, "lr": vals})
with open(OUT + "/schedule.json", "w") as fh:
    json.dump(sched, fh)
