"""Which guidance scale and guidance interval should a model sample with? `kinema eval` figures
for each setting, on the same held-out captions and the same noise (a paired comparison).

    python benchmarks/guidance_sweep.py [--model DIR] [--num 256] [--json out.json] \
        4,0,1 3,0,0.75 2.5,0,0.75 ...

Each setting is GUIDANCE,LO,HI: classifier-free guidance at scale GUIDANCE applied at noise
levels t in [LO, HI] only (t = 1 is pure noise; `kinema.diffusion.sampling.cfg`), the model's
steps and sampler. Prints fvd (with its bootstrap std and the real-vs-real floor) and adherence
per attribute, one line per setting; compare settings at one N, beside the floor.
"""

import argparse
import json

from kinema.eval_suite import evaluate, public
from kinema.models.classifier import load_classifier
from kinema.pipeline import load


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("settings", nargs="+", help="GUIDANCE,LO,HI, e.g. 3,0,0.75")
    ap.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    ap.add_argument("--num", type=int, default=256, help="held-out captions per setting")
    ap.add_argument("--json", default=None, help="write every setting's figures to this file")
    args = ap.parse_args()
    pipe, classifier = load(args.model), load_classifier()
    rows = []
    for spec in args.settings:
        g, lo, hi = map(float, spec.split(","))
        r = public(evaluate(pipe, num=args.num, guidance=g, guidance_interval=(lo, hi), classifier=classifier,
                            progress=False))
        rows.append({"guidance": g, "interval": [lo, hi], **r})
        a = r["adherence"]
        print(f"guidance {g:g} on [{lo:g}, {hi:g}]: fvd {r['fvd']:.1f} +- {r['fvd_std']:.1f} (floor "
              f"{r['fvd_floor']:.1f}); " + ", ".join(f"{k} {v:.0%}" for k, v in a.items())
              + f"; {r['seconds']['generate']:.0f} s", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
