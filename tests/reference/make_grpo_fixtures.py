#!/usr/bin/env python3
"""Regenerate tests/fixtures/grpo/trl_loss.json and trl_advantages.json from TRL itself.

What is called (PyPI trl, tested with 1.16; torch CPU, float64):
  * Loss: trl.GRPOTrainer._compute_loss(stub, model=None, inputs) — TRL's own method, unmodified,
    bound to a minimal stub object that carries only the attributes the method reads (loss_type,
    epsilon_low/high, beta, args.delta, use_vllm/vllm_importance_sampling_correction, ...). The stub's
    _get_per_token_logps_and_entropies returns our random per-token log-probs as a leaf tensor, so
    TRL's returned loss is a function of those log-probs and torch autograd gives dloss/dlogp.
    Micro-batches: TRL's gradient-accumulation semantics (current_gradient_accumulation_steps = M,
    steps_per_generation = M, num_items_in_batch = step token count); we sum the M returned losses.
  * Truncated IS weights: the token_truncate branch of GRPOTrainer._generate_and_score_completions,
    executed verbatim (source lines extracted with inspect between two comments of that method).
  * Advantages: the reward -> advantage block of _generate_and_score_completions (from
    `unscorable_mask = ...` to `advantages = torch.nan_to_num(...)`), executed verbatim with
    trl.trainer.utils.nanstd, for scale_rewards group|batch|none and both multi_objective_aggregation.
Nothing of TRL is re-implemented here; the extracted source is printed with --show.

Configurations: loss_type grpo/dapo/dr_grpo/bnpo x dual clip (TRL args.delta = 3) x beta {0, 0.04}
x TIS {off, on (cap 3)}, 1 or 2 equal-sized micro-batches, plus mu = 1 cases (old_per_token_logps
absent). Our contract agrees with TRL for all of these (see grpo/loss.h); it differs for micro-batches
of unequal size (TRL's grpo/dr_grpo/bnpo divide by the micro-batch size times the accumulation
steps, ours by the global B'), which is therefore not a fixture.

Where TRL's semantics differ from spec/grpo.md (we follow the spec; the fixtures cover only the
configurations where both agree):
  * grpo / dr_grpo / bnpo normalise per micro-batch (rows of the micro-batch, divided by
    current_gradient_accumulation_steps); the spec uses global B' (grpo, dr_grpo). Equal only when every
    micro-batch holds the same number of completions -> fixtures use equal-sized micro-batches.
  * dr_grpo in TRL divides by (micro-batch rows * max_completion_length); ours by (B' * max_new_tokens).
  * dapo: TRL divides by num_items_in_batch / num_processes (DDP then averages ranks); we divide by the
    global token count and sum over ranks: the same gradient.
  * Dual clip: TRL has no A<0-only dual clip but a two-sided `delta` cap on rho; for c > 1+eps_high it is
    identical (proof in grpo/loss.h), so the fixtures use delta = c.
  * TIS: TRL multiplies the surrogate (not the KL term) by the token_truncate IS ratio; so do we.
  * Advantages: same eps (1e-4) and Bessel std; TRL leaves a rounding residue (r - mean) / 1e-4 for a
    group of equal non-dyadic rewards in float32, ours is exactly 0 (fixture rewards are dyadic).
    normalize_then_sum re-standardises over the batch and ignores scale_rewards: we do the same.

usage: python3 tests/reference/make_grpo_fixtures.py [--show]
"""
import inspect, json, os, sys, textwrap
from collections import defaultdict
from types import SimpleNamespace

import numpy as np
import torch
import trl
from trl import GRPOTrainer
from trl.trainer.utils import nanstd

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fixtures", "grpo")


def extract(method, start, end, include_end=True):
    """Source lines of `method` from the line containing `start` up to the line containing `end`."""
    src = inspect.getsource(method).splitlines()
    i = next(k for k, l in enumerate(src) if start in l)
    j = next(k for k in range(i, len(src)) if end in src[k])
    return textwrap.dedent("\n".join(src[i:j + 1 if include_end else j]))


IS_SRC = extract(GRPOTrainer._generate_and_score_completions,
                 "# Compute the importance sampling ratio when using vLLM",
                 "# Compute the per-token log probabilities for the reference model", include_end=False)
ADV_SRC = extract(GRPOTrainer._generate_and_score_completions,
                  "unscorable_mask = torch.isnan(rewards_per_func).all(dim=1)",
                  "advantages = torch.nan_to_num(advantages, nan=0.0)")


def f32(a):
    """Round to float32 (what the C side reads) but keep float64 for TRL's arithmetic."""
    return torch.tensor(np.asarray(a, dtype=np.float32), dtype=torch.float64)


def num(x):
    return None if x != x else float("%.9g" % x)


def flat(t):
    return [num(float(v)) for v in t.reshape(-1).tolist()]


class Accel:
    num_processes = 1
    sync_gradients = True
    gather = staticmethod(lambda x: x)
    gather_for_metrics = staticmethod(lambda x: x)
    reduce = staticmethod(lambda x, reduction="sum": x)


def trl_is_ratio(old, sampling, completion_mask, tool_mask, cap):
    env = dict(torch=torch, math=__import__("math"), old_per_token_logps=old, sampling_per_token_logps=sampling,
               completion_mask=completion_mask, tool_mask=tool_mask,
               self=SimpleNamespace(use_vllm=True, vllm_importance_sampling_correction=True,
                                    vllm_importance_sampling_mode="token_truncate",
                                    vllm_importance_sampling_clip_min=None, vllm_importance_sampling_clip_max=cap))
    exec(IS_SRC, env)
    return env["vllm_importance_sampling_ratio"]


def trl_loss(cfg, logp_leaf, inputs, n_micro, max_len):
    stub = SimpleNamespace(
        loss_type=cfg["loss_type"], epsilon_low=cfg["eps_low"], epsilon_high=cfg["eps_high"], beta=cfg["beta"],
        args=SimpleNamespace(delta=cfg["dual_clip_c"] if cfg["dual_clip"] else None, use_bias_correction_kl=False,
                             steps_per_generation=n_micro),
        use_vllm=cfg["tis"], vllm_importance_sampling_correction=cfg["tis"],
        top_entropy_quantile=1.0, off_policy_mask_threshold=None, importance_sampling_level="token",
        current_gradient_accumulation_steps=n_micro, max_completion_length=max_len,
        _entropy_bonus_enabled=False, aux_loss_enabled=False, accelerator=Accel(),
        model=SimpleNamespace(training=True), _metrics=defaultdict(lambda: defaultdict(list)),
        _get_per_token_logps_and_entropies=lambda *a, **k: (logp_leaf, torch.zeros_like(logp_leaf), None),
        get_off_policy_mask=GRPOTrainer.get_off_policy_mask)
    return GRPOTrainer._compute_loss(stub, None, inputs)


def loss_case(rng, cfg, n_micro, B, T, mu1):
    case = dict(cfg, n_micro=n_micro, max_new_tokens=T, mu1=mu1, micro=[])
    micro = []
    for _ in range(n_micro):
        lens = rng.integers(1, T + 1, size=B)
        cmask = (np.arange(T)[None, :] < lens[:, None]).astype(np.float64)
        tmask = (rng.random((B, T)) > 0.15).astype(np.float64)  # interior masked tokens (TRL: tool_mask)
        logp = -0.05 - 3 * rng.random((B, T))
        # log-ratios: most inside the clip range, 15% far out (rho in [2.5, 5.5], past the dual clip c = 3)
        d = np.where(rng.random((B, T)) < 0.15, 0.9 + 0.8 * rng.random((B, T)), 0.35 * rng.standard_normal((B, T)))
        rho = np.exp(d)
        for k in (1 - cfg["eps_low"], 1 + cfg["eps_high"], cfg["dual_clip_c"]):  # stay off the kinks
            d = np.where(np.abs(rho / k - 1) < 0.02, d + 0.05, d)
        old = logp - d
        ref = logp + 0.5 * rng.standard_normal((B, T))
        smp = old + 0.8 * rng.standard_normal((B, T))
        adv = rng.standard_normal(B)
        adv[rng.random(B) < 0.15] = 0.0
        micro.append(dict(lens=lens, cmask=f32(cmask), tmask=f32(tmask), logp=f32(logp), old=f32(old), ref=f32(ref),
                          smp=f32(smp), adv=f32(adv)))
    n_items = sum(float((m["cmask"] * m["tmask"]).sum()) for m in micro)
    total = 0.0
    for m in micro:
        leaf = m["logp"].clone().requires_grad_(True)
        inputs = dict(prompt_ids=torch.zeros(B, 1, dtype=torch.long), prompt_mask=torch.ones(B, 1),
                      completion_ids=torch.zeros(B, T, dtype=torch.long), completion_mask=m["cmask"],
                      tool_mask=m["tmask"], advantages=m["adv"], num_items_in_batch=torch.tensor(n_items))
        if not mu1:
            inputs["old_per_token_logps"] = m["old"]
        if cfg["beta"] != 0:
            inputs["ref_per_token_logps"] = m["ref"]
        if cfg["tis"]:
            inputs["importance_sampling_ratio"] = trl_is_ratio(m["old"], m["smp"], m["cmask"], m["tmask"], cfg["tis_cap"])
        loss = trl_loss(cfg, leaf, inputs, n_micro, T)
        loss.backward()
        total += float(loss.detach())
        # pack: valid (completion_mask) tokens only, completion by completion; tool_mask becomes our mask
        sel = m["cmask"].reshape(-1) > 0
        comp = np.repeat(np.arange(B), T).reshape(-1)[sel.numpy()]
        pk = lambda t: flat(t.reshape(-1)[sel])
        case["micro"].append(dict(n_comp=B, comp=comp.tolist(), adv=flat(m["adv"]), mask=pk(m["tmask"]),
                                  logp=pk(m["logp"]), logp_old=None if mu1 else pk(m["old"]), logp_ref=pk(m["ref"]),
                                  logp_sampler=pk(m["smp"]), trl_dlogp=pk(leaf.grad)))
    case["trl_loss"] = total
    return case


def adv_case(rng, scale, agg, n_groups, G, K):
    choices = np.array([0.0, 0.25, 0.5, 1.0, -1.0])
    r = choices[rng.integers(0, len(choices), size=(n_groups * G, K))]
    r[rng.random(r.shape) < 0.1] = np.nan          # one function gave no reward
    if n_groups * G >= 3:
        r[1, :] = np.nan                            # an unscorable completion (e.g. verdict IE)
    if n_groups > 1 and G > 1:
        r[G:2 * G, :] = 1.0                         # a group with all-equal rewards
    if n_groups > 2 and G > 2:
        r[2 * G:3 * G - 1, :] = np.nan              # a group with one scorable completion
    w = [1.0, 0.5, 0.2][:K]
    rewards_per_func = torch.tensor(r, dtype=torch.float64)
    env = dict(torch=torch, nanstd=nanstd, rewards_per_func=rewards_per_func, device="cpu", num_generations=G,
               self=SimpleNamespace(multi_objective_aggregation=agg, scale_rewards=scale, reward_funcs=[None] * K,
                                    reward_weights=torch.tensor(w, dtype=torch.float64)))
    exec(ADV_SRC, env)
    return dict(scale=scale, combine="sum" if agg == "sum_then_normalize" else "normalize", n_groups=n_groups,
                G=G, K=K, weights=w, rewards=flat(rewards_per_func), trl_advantages=flat(env["advantages"]))


def main():
    if "--show" in sys.argv:
        print("# IS ratio block\n" + IS_SRC + "\n# advantage block\n" + ADV_SRC)
        return
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20260522)
    cases = []
    k = 0
    for lt in ["grpo", "dapo", "dr_grpo", "bnpo"]:
        for dual in (0, 1):
            for beta in (0.0, 0.04):
                for tis in (0, 1):
                    cfg = dict(loss_type=lt, eps_low=0.2, eps_high=0.28, beta=beta, dual_clip=dual, dual_clip_c=3.0,
                               tis=tis, tis_cap=3.0)
                    cases.append(loss_case(rng, cfg, n_micro=1 + (k % 2), B=3, T=7, mu1=False))
                    k += 1
        cfg = dict(loss_type=lt, eps_low=0.2, eps_high=0.2, beta=0.04, dual_clip=0, dual_clip_c=3.0, tis=0, tis_cap=3.0)
        cases.append(loss_case(rng, cfg, n_micro=2, B=3, T=7, mu1=True))
    meta = dict(generator="tests/reference/make_grpo_fixtures.py", trl=trl.__version__, torch=torch.__version__)
    with open(os.path.join(OUT, "trl_loss.json"), "w") as f:
        json.dump(dict(meta, cases=cases), f, separators=(",", ":"))
    adv = []
    for scale in ["group", "batch", "none"]:
        for agg in ["sum_then_normalize", "normalize_then_sum"]:
            adv.append(adv_case(rng, scale, agg, n_groups=5, G=4, K=3))
    adv.append(adv_case(rng, "group", "sum_then_normalize", n_groups=3, G=1, K=2))
    adv.append(adv_case(rng, "none", "sum_then_normalize", n_groups=2, G=6, K=1))
    with open(os.path.join(OUT, "trl_advantages.json"), "w") as f:
        json.dump(dict(meta, cases=adv), f, separators=(",", ":"))
    print(f"wrote {len(cases)} loss cases and {len(adv)} advantage cases to {OUT} (trl {trl.__version__})")


if __name__ == "__main__":
    main()
