"""How many sampling steps does a model need? `kinema eval` figures at each step count, on the
same captions and the same noise (a paired comparison), for the held-out and compositions splits.

    python benchmarks/steps_sweep.py [--model DIR] [--num 256] [--steps 1,2,4,8,16,32] \
        [--json docs/steps_sweep.json] [--figure docs/figures/steps_sweep.png]

Prints, per split and step count, fvd (with its bootstrap std; the real-vs-real floor), adherence
per attribute and by object count (motions of 1 / 2 / 3-object clips), and generation seconds;
the figure plots fvd and adherence against steps. Issue 23's few-step targets read from it: 4
steps within 10% of 32 in fvd and every adherence figure, 1 step within 2x fvd.
"""

import argparse
import json

from kinema.eval_suite import evaluate, public
from kinema.models.classifier import load_classifier
from kinema.pipeline import load

ATTRIBUTES = ("colors", "shapes", "motions", "count")


def figure(rows: list[dict], path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for split, style in (("heldout", "-"), ("compositions", "--")):
        part = [r for r in rows if r["split"] == split]
        if not part:
            continue
        steps = [r["steps"] for r in part]
        axes[0].errorbar(steps, [r["fvd"] for r in part], yerr=[r["fvd_std"] for r in part], fmt="o" + style,
                         capsize=3, label=f"{split} (floor {part[0]['fvd_floor']:.1f})")
        for k in ATTRIBUTES:
            axes[1].plot(steps, [100 * r["adherence"][k] for r in part], "o" + style, label=f"{k}, {split}")
    for ax, title in ((axes[0], "fvd (lower is better)"), (axes[1], "adherence, % of clips")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("sampling steps")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    axes[1].legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    ap.add_argument("--num", type=int, default=256, help="captions per split and step count")
    ap.add_argument("--steps", default="1,2,4,8,16,32", help="step counts, comma-separated")
    ap.add_argument("--splits", default="heldout,compositions", help="splits, comma-separated")
    ap.add_argument("--json", default=None, help="write every figure to this file")
    ap.add_argument("--figure", default=None, help="write a png of fvd and adherence against steps")
    args = ap.parse_args()
    pipe, classifier = load(args.model), load_classifier()
    rows = []
    for split in args.splits.split(","):
        for n in map(int, args.steps.split(",")):
            r = public(evaluate(pipe, num=args.num, split=split, steps=n, classifier=classifier, progress=False))
            r = {"split": split, "steps": n, **r}
            rows.append(r)
            by = r.get("adherence_by_count", {})
            counts = " / ".join(f"{100 * by[c]['motions']:.0f}" for c in sorted(by)) if by else "-"
            print(f"{split} {n:>2} steps: fvd {r['fvd']:.1f} +- {r['fvd_std']:.1f} (floor {r['fvd_floor']:.1f}); "
                  + ", ".join(f"{k} {r['adherence'][k]:.0%}" for k in ATTRIBUTES)
                  + f"; motions by object count {counts}%; {r['seconds']['generate']:.0f} s", flush=True)
            if args.json:  # after every setting: a stopped sweep keeps what it measured
                with open(args.json, "w") as f:
                    json.dump(rows, f, indent=1)
    if args.figure:
        figure(rows, args.figure)


if __name__ == "__main__":
    main()
