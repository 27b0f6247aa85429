"""A shapes-64 transformer training step, four ways, side by side in one run: PyTorch's fused
SDPA kernel or kinema's explicit attention (`kinema.models.transformer.attention`), each eager
or under torch.compile (`TrainConfig.compile`). The numbers behind both choices.

    python benchmarks/train_step_speed.py [--rounds 5] [--steps 5] [--batch 16]

Each round times `--steps` optimiser steps (forward, backward, AdamW; bf16 autocast) of every
variant in turn, so drifts in machine load hit all four alike; the median round is reported,
with GFLOP/s by the 6 x params x tokens rule (attention's own FLOPs left out) and its fraction of
the bf16 matmul peak measured by benchmarks/bf16_speed.py (pass it with --peak).
"""

import argparse
import copy
import json
import statistics
import time

import torch

import kinema.models.transformer as tr
from kinema.config import preset
from kinema.runtime import autocast


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds (each runs every variant)")
    ap.add_argument("--steps", type=int, default=5, help="training steps per variant per round")
    ap.add_argument("--batch", type=int, default=16, help="clips per step (the preset's batch)")
    ap.add_argument("--peak", type=float, default=989.0, help="bf16 matmul peak, GFLOP/s (bf16_speed.py)")
    args = ap.parse_args()
    torch.manual_seed(0)
    cfg = tr.TransformerConfig.from_dict({**preset("transformer", "shapes-64").model, "latent_channels": 16})
    base = tr.VideoTransformer(cfg)
    B, tokens = args.batch, 5 * 8 * 8 // cfg.patch ** 2
    x, t = torch.randn(B, 16, 5, 8, 8), torch.rand(B, 5)
    text, mask = torch.randn(B, 20, cfg.text_dim), torch.ones(B, 20, dtype=torch.bool)
    explicit_limit = tr.EXPLICIT_MAX_SCORES
    variants = {}
    for attn in ("fused", "explicit"):
        for compiled in (False, True):
            model = copy.deepcopy(base)
            opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
            variants[f"{attn} {'compiled' if compiled else 'eager'}"] = (
                attn, torch.compile(model) if compiled else model, opt)

    def run(name, steps):
        attn, fwd, opt = variants[name]
        tr.EXPLICIT_MAX_SCORES = explicit_limit if attn == "explicit" else 0  # 0: always the fused kernel
        start = time.perf_counter()
        for _ in range(steps):
            with autocast(torch.device("cpu")):
                loss = (fwd(x, t, text, mask).float() - x).square().mean()
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        return (time.perf_counter() - start) / steps

    for name in variants:  # warm up: compile, oneDNN kernel choice
        run(name, 3)
    times = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name in variants:
            times[name].append(run(name, args.steps))
    params = sum(p.numel() for p in base.parameters())
    flops = 6 * params * B * tokens
    ref = statistics.median(times["fused eager"])
    result = {"benchmark": "train_step_speed", "threads": torch.get_num_threads(), "params": params, "batch": B,
              "tokens": tokens, "variants": {}}
    for name, ts in times.items():
        s = statistics.median(ts)
        gf = flops / s / 1e9
        result["variants"][name] = {"sec_per_step": round(s, 4), "speedup": round(ref / s, 2),
                                    "gflops": round(gf, 1), "of_peak": round(gf / args.peak, 3)}
        print(f"{name:18s} {s:.3f} s a step  x{ref / s:.2f}  {gf:6.1f} GFLOP/s  {gf / args.peak:.0%} of peak")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
