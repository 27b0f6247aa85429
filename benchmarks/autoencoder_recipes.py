"""Autoencoder recipes side by side: which choices make the causal VAE learn fast on 2 cores.

    python benchmarks/autoencoder_recipes.py --steps 300                                  # the baseline
    python benchmarks/autoencoder_recipes.py --steps 300 --no-shortcuts                   # DC-AE shortcuts off
    python benchmarks/autoencoder_recipes.py --steps 200 --batch 16 --crop 32             # 16 random 32x32 crops
    python benchmarks/autoencoder_recipes.py --steps 400 --batch 16 --crop 32 --frames 5 --lr 1e-3

Trains the shapes-64 autoencoder architecture from scratch for a fixed number of steps (AdamW,
linear warmup over 100 steps, gradient clip 1, bf16 autocast where fast) and prints the mean
PSNR on 16 held-out 17x64x64 clips at four points. Run variants one after another (or in
parallel with `OMP_NUM_THREADS=1`) and compare at equal steps and equal seconds.
"""

import argparse
import json
import time

import numpy as np
import torch

from kinema.config import preset
from kinema.data.synthetic import SyntheticClips
from kinema.models.autoencoder import AutoencoderConfig, VideoAutoencoder
from kinema.runtime import autocast
from kinema.tasks import psnr_db, random_crops


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300, help="training steps")
    ap.add_argument("--batch", type=int, default=4, help="clips per step")
    ap.add_argument("--frames", type=int, default=9, help="frames per training clip (4k+1)")
    ap.add_argument("--crop", type=int, default=0, help="train on random crop x crop windows (0: whole 64x64 frames)")
    ap.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    ap.add_argument("--no-shortcuts", action="store_true", help="turn the parameter-free shortcuts off")
    args = ap.parse_args()
    torch.manual_seed(0)
    model_cfg = {**preset("autoencoder", "shapes-64").model, "shortcuts": not args.no_shortcuts}
    model = VideoAutoencoder(AutoencoderConfig.from_dict(model_cfg))
    opt = torch.optim.AdamW(model.parameters(), args.lr, betas=(0.9, 0.99))
    clips = SyntheticClips("train", 0, args.frames, 64, 64, 8.0)
    held = SyntheticClips("heldout", 0, 17, 64, 64, 8.0)
    heldout = torch.stack([held[i].video.to_tensor() for i in range(16)])
    gen = torch.Generator().manual_seed(0)
    t0, curve = time.perf_counter(), []
    for step in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = args.lr * min(1.0, (step + 1) / 100)
        x = torch.stack([clips[step * args.batch + j].video.to_tensor() for j in range(args.batch)])
        x = random_crops(x, args.crop, seed=step)
        with autocast("cpu"):
            loss, _ = model(x, gen)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if (step + 1) % max(1, args.steps // 4) == 0:
            curve.append({"step": step + 1, "psnr": round(heldout_psnr(model, heldout), 2),
                          "seconds": round(time.perf_counter() - t0)})
            point = curve[-1]
            print(f"step {point['step']}: held-out PSNR {point['psnr']:.2f} dB after {point['seconds']} s", flush=True)
    print(json.dumps({"benchmark": "autoencoder_recipes", **vars(args), "curve": curve}))


@torch.no_grad()
def heldout_psnr(model, heldout) -> float:
    model.eval()
    with autocast("cpu"):
        rec = model.decode(model.encode(heldout)).float().clamp(-1, 1)
    model.train()
    return float(np.mean([psnr_db(a, b) for a, b in zip(heldout, rec)]))


if __name__ == "__main__":
    main()
