"""Learning curves of training recipes side by side: every snapshot a run kept (`--set
snapshot_every=N`: out/snapshots/step_N/, with its training seconds) scored by `kinema eval`'s
figures on the same clips, noise and captions; adherence by object count and fvd against steps
and against training minutes.

    python benchmarks/learning_curve.py runs/scratch_plain runs/scratch_repa --num 128 \
        --json docs/learning_curve.json --figure docs/figures/learning_curve.png

A run's final model (out/model) counts as its last point when no snapshot has its step.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kinema.checkpoint import read_index  # noqa: E402
from kinema.eval_suite import evaluate  # noqa: E402
from kinema.models.classifier import load_classifier  # noqa: E402
from kinema.pipeline import load  # noqa: E402


def points(run: Path) -> list[tuple[int, float | None, Path]]:
    """(step, training seconds, model folder) of each snapshot of `run`, and its final model."""
    out = []
    for folder in sorted((run / "snapshots").glob("step_*")):
        if (folder / "model_index.json").is_file():
            snap = read_index(folder).get("snapshot", {})
            out.append((int(snap.get("step", folder.name[5:])), snap.get("train_seconds"), folder))
    final = run / "model"
    if (final / "model_index.json").is_file():
        step = read_index(final).get("recipe", {}).get("steps")
        state = final / "train_state" / "state.json"
        seconds = json.loads(state.read_text()).get("elapsed_s") if state.is_file() else None
        if step is not None and all(s != step for s, _, _ in out):
            out.append((int(step), seconds, final))
    return sorted(out, key=lambda p: p[0])


def figure(results: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("motions", "motions right (all objects)"), ("shapes", "shapes right (all objects)"), ("fvd", "fvd")]
    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    styles = {"1": "-", "2": "--", "3": ":"}
    for row, xkey, xlabel in ((0, "step", "training steps"), (1, "minutes", "training minutes")):
        for col, (key, title) in enumerate(panels):
            ax = axes[row][col]
            for k, (run, pts) in enumerate(results.items()):
                color = f"C{k}"
                xs = [p[xkey] for p in pts]
                if key == "fvd":
                    ax.plot(xs, [p["fvd"] for p in pts], "o-", color=color, label=Path(run).name)
                    continue
                for n, style in styles.items():
                    ys = [p["by_count"].get(n, {}).get(key) for p in pts]
                    if any(y is not None for y in ys):
                        ax.plot(xs, [100 * (y or 0) for y in ys], style, marker="o", color=color,
                                label=f"{Path(run).name}, {n} object{'s' if n != '1' else ''}")
            ax.set_title(title)
            ax.set_xlabel(xlabel)
            ax.set_ylabel("fvd" if key == "fvd" else "% of clips")
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    axes[0][2].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path, help="training runs with snapshots/ (and model/)")
    ap.add_argument("--num", type=int, default=128, help="clips per evaluation (same clips for every point)")
    ap.add_argument("--split", default="heldout", choices=["heldout", "compositions"], help="procedural split")
    ap.add_argument("--json", type=Path, help="write every point here")
    ap.add_argument("--figure", type=Path, help="write the curves here (PNG)")
    args = ap.parse_args()
    classifier = load_classifier()
    results: dict[str, list[dict]] = {}
    for run in args.runs:
        pts = points(run)
        if not pts:
            print(f"error: {run} has no snapshots/ and no model/", file=sys.stderr)
            return 2
        for step, seconds, folder in pts:
            t0 = time.perf_counter()
            r = evaluate(load(folder), num=args.num, split=args.split, classifier=classifier, progress=False)
            point = {"step": step, "minutes": round(seconds / 60, 2) if seconds is not None else None,
                     "fvd": round(r["fvd"], 2), "fvd_std": round(r["fvd_std"], 2),
                     "adherence": {k: round(v, 4) for k, v in r["adherence"].items()},
                     "by_count": r["adherence_by_count"], "model": str(folder)}
            results.setdefault(str(run), []).append(point)
            by = point["by_count"]
            print(f"{run.name} step {step:6d} ({point['minutes']} min): fvd {point['fvd']:.1f}, motions 1/2/3 "
                  + " / ".join(f"{100 * by.get(n, {}).get('motions', 0):.0f}" for n in "123")
                  + ", shapes 1/2/3 " + " / ".join(f"{100 * by.get(n, {}).get('shapes', 0):.0f}" for n in "123")
                  + f"  [{time.perf_counter() - t0:.0f} s]", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"benchmark": "learning_curve", "num": args.num, "split": args.split,
                                         "runs": results}, indent=1))
    if args.figure:
        figure(results, args.figure)
    return 0


if __name__ == "__main__":
    sys.exit(main())
