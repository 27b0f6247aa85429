"""Reconstruction quality of a trained autoencoder on held-out procedural clips.

    python benchmarks/autoencoder_psnr.py --model runs/ae64 [--num 64] [--frames 17]

PSNR (dB, pixels in [0, 255]) of decode(encode(clip)) against the rendered clip (not an mp4
round trip), per clip: min, mean, median; plus the time per clip to encode and decode.
The core issue's bar: >= 30 dB on held-out 64x64 clips.
"""

import argparse
import json
import time

import numpy as np
import torch

from kinema.data.synthetic import SyntheticClips
from kinema.pipeline import load_autoencoder


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="model or run folder with an autoencoder")
    ap.add_argument("--num", type=int, default=64, help="held-out clips")
    ap.add_argument("--frames", type=int, default=17)
    ap.add_argument("--size", type=int, default=64)
    args = ap.parse_args()
    ae = load_autoencoder(args.model).eval()
    clips = SyntheticClips("heldout", seed=0, frames=args.frames, height=args.size, width=args.size)
    scores, t_enc, t_dec = [], 0.0, 0.0
    with torch.no_grad():
        for start in range(0, args.num, 8):
            x = torch.stack([clips[i].video.to_tensor() for i in range(start, min(args.num, start + 8))])
            t0 = time.perf_counter()
            z = ae.encode(x)
            t1 = time.perf_counter()
            y = ae.decode(z).clamp(-1, 1)
            t2 = time.perf_counter()
            t_enc, t_dec = t_enc + t1 - t0, t_dec + t2 - t1
            a = ((x + 1) * 127.5).round()
            b = ((y + 1) * 127.5).round()
            mse = ((a - b) ** 2).mean((1, 2, 3, 4))
            scores += (10 * torch.log10(255.0**2 / mse.clamp(min=1e-10))).tolist()
    result = {"benchmark": "autoencoder_psnr", "model": args.model, "clips": args.num, "frames": args.frames,
              "size": args.size, "psnr_min": round(min(scores), 2), "psnr_mean": round(float(np.mean(scores)), 2),
              "psnr_median": round(float(np.median(scores)), 2),
              "encode_ms_per_clip": round(1000 * t_enc / args.num, 1), "decode_ms_per_clip": round(1000 * t_dec / args.num, 1)}
    print(f"PSNR mean {result['psnr_mean']} dB, median {result['psnr_median']}, min {result['psnr_min']} "
          f"over {args.num} held-out {args.frames}x{args.size}x{args.size} clips")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
