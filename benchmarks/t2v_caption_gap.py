"""Does a text-to-video model use each part of the prompt? Loss gaps on real clips.

    python benchmarks/t2v_caption_gap.py --model runs/t2v [--clips 48]

Generating and reading clips (t2v_adherence.py) says whether a model follows prompts; this says
why not. Real clips of one object moving in each direction are encoded and noised, and the
model's flow-matching loss is measured with the right caption and with captions that get one
thing wrong: the opposite direction, another colour, or no caption. A model that uses the
direction words has a clearly higher loss with the opposite direction; one that ignores them
has none. Same clips, same noise for every caption, so the gaps are paired and free of noise.
"""

import argparse
import json

import numpy as np
import torch

from kinema.data.synthetic import COLORS, render
from kinema.diffusion.flow import add_noise, flow_loss
from kinema.pipeline import load
from kinema.runtime import autocast
from t2v_adherence import CASES, prompt, real_scene  # the same prompts and real clips (benchmarks/ is on sys.path)

OPPOSITE = {"left": "right", "right": "left", "up": "down", "down": "up", "up-left": "down-right",
            "down-right": "up-left", "up-right": "down-left", "down-left": "up-right"}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="model or run folder")
    ap.add_argument("--times", default="0.5,0.7,0.85,0.95", help="noise levels t to measure at")
    args = ap.parse_args()
    pipe = load(args.model)
    colors = list(COLORS)
    cases = CASES
    clips = [render(real_scene(c, s, d, n), np.random.default_rng(n), 17, 64, 64, 8.0)
             for n, (c, s, d) in enumerate(cases)]
    x = torch.from_numpy(np.stack(clips)).permute(0, 4, 1, 2, 3).float() / 127.5 - 1
    with torch.no_grad(), autocast(pipe.device):
        z = pipe.autoencoder.encode(x.to(pipe.device)).float()
    captions = {"right": [prompt(c, s, d) for c, s, d in cases],
                "opposite_direction": [prompt(c, s, OPPOSITE[d]) for c, s, d in cases],
                "other_colour": [prompt(colors[(colors.index(c) + 3) % 6], s, d) for c, s, d in cases],
                "no_caption": [""] * len(cases)}
    text = {k: pipe.text_encoder.encode(v) for k, v in captions.items()}
    rows = []
    for first_frame_given in (False, True):
        for tv in map(float, args.times.split(",")):
            noise = torch.randn(z.shape, generator=torch.Generator().manual_seed(1)).to(z.device)
            t = torch.full(z.shape[:1] + z.shape[2:3], tv, device=z.device)
            if first_frame_given:  # latent frame 0 clean: the rest must follow from it and the text
                t[:, 0] = 0
            xt = add_noise(z, noise, t)
            row = {"t": tv, "first_frame_given": first_frame_given}
            for k, (states, mask) in text.items():
                with torch.no_grad(), autocast(pipe.device):
                    v = pipe.transformer(xt, t, states, mask).float()
                row[k] = round(flow_loss(v, z, noise, t > 0).item(), 4)
            rows.append(row)
            gap = lambda k: (row[k] - row["right"]) / row["right"]  # noqa: E731
            print(f"t={tv:.2f} first frame {'given' if first_frame_given else 'noised'}: loss {row['right']:.4f}; "
                  f"opposite direction {gap('opposite_direction'):+.1%}, other colour {gap('other_colour'):+.1%}, "
                  f"no caption {gap('no_caption'):+.1%}")
    print(json.dumps({"benchmark": "t2v_caption_gap", "model": args.model, "clips": len(cases), "rows": rows}))


if __name__ == "__main__":
    main()
