#!/usr/bin/env python3
"""Does a checkpoint that Crucible writes (model_save) load in transformers and compute the same
thing? For each parity fixture (tests/fixtures/model/<name>):

  1. builds tests/reference/tools/save_checkpoint.c against build/libcrucible.a (run `make` first),
  2. runs it: load the fixture, 2 AdamW steps in C, model_save to a temp dir, and dump the C
     model's logits ([N, vocab], from model_forward_hidden x lm_head) and log-probs on the batch,
  3. loads that dir with DeepseekV2ForCausalLM.from_pretrained (eager, fp32), requires no missing
     or unexpected weights, runs the same packed batch (one sequence at a time, with positions)
     and compares logits and log-probs.

Usage: python3 tests/reference/check_saved_checkpoint.py [--keep DIR]
Exit status 0 when every fixture's logits agree within 1e-4 relative (Frobenius) and every
log-prob within 1e-4 relative.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import torch
from safetensors.torch import load_file
from transformers import DeepseekV2ForCausalLM

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def make_vars():
    out = subprocess.run(["make", "-pn", "build/crucible"], cwd=ROOT, capture_output=True, text=True).stdout
    v = {}
    for name in ("CFLAGS", "LDFLAGS", "LDLIBS"):
        m = re.search(rf"^{name} := (.*)$", out, re.M)
        v[name] = m.group(1).split() if m else []
    return v


def build_helper(tmp):
    v = make_vars()
    cflags = [f for f in v["CFLAGS"] if f not in ("-MMD", "-MP")]
    exe = os.path.join(tmp, "save_checkpoint")
    cmd = ["gcc", *cflags, "-o", exe, os.path.join(ROOT, "tests/reference/tools/save_checkpoint.c"),
           os.path.join(ROOT, "build/libcrucible.a"), *v["LDFLAGS"], *v["LDLIBS"]]
    subprocess.run(cmd, cwd=ROOT, check=True)
    return exe


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keep", help="write the checkpoints under this dir instead of a temp dir")
    a = ap.parse_args()
    torch.set_default_dtype(torch.float32)
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        exe = build_helper(tmp)
        for name in ("lite", "v2"):
            fx = os.path.join(ROOT, "tests/fixtures/model", name)
            out = os.path.join(a.keep or tmp, f"saved_{name}")
            subprocess.run([exe, fx, out], cwd=ROOT, check=True)
            model, info = DeepseekV2ForCausalLM.from_pretrained(
                out, attn_implementation="eager", experts_implementation="eager",
                dtype=torch.float32, output_loading_info=True)
            bad = {k: v for k, v in info.items() if v}
            print(f"[{name}] from_pretrained({out}): loading info {bad or 'clean'}; "
                  f"attention scale {model.model.layers[0].self_attn.scaling:.9f}")
            ok &= not bad
            data = load_file(os.path.join(fx, "data.safetensors"))
            cu, V = data["cu_seqlens"].tolist(), model.config.vocab_size
            logits, logps = [], []
            with torch.no_grad():
                for b in range(len(cu) - 1):
                    s = slice(cu[b], cu[b + 1])
                    lg = model(input_ids=data["tokens"][s][None], position_ids=data["pos"][s][None]).logits[0]
                    tg = data["targets"][s]
                    lp = torch.log_softmax(lg.double(), -1).gather(1, tg.clamp(min=0)[:, None])[:, 0]
                    logits.append(lg.double())
                    logps.append(torch.where(tg >= 0, lp, torch.zeros_like(lp)))
            ref_logits, ref_logp = torch.cat(logits), torch.cat(logps)
            n = len(ref_logp)
            c_logits = torch.from_numpy(np.fromfile(os.path.join(out, "crucible_logits.f32"), np.float32)).double().view(n, V)
            c_logp = torch.from_numpy(np.fromfile(os.path.join(out, "crucible_logp.f32"), np.float32)).double()
            e_logits = ((c_logits - ref_logits).norm() / ref_logits.norm()).item()
            valid = data["targets"] >= 0
            e_logp = ((c_logp - ref_logp).abs()[valid] / ref_logp.abs()[valid]).max().item()
            print(f"  logits rel err (Frobenius) {e_logits:.2e}, max logp rel err {e_logp:.2e} over {n} tokens")
            ok &= e_logits < 1e-4 and e_logp < 1e-4
    print("check_saved_checkpoint:", "OK" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
