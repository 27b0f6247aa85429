"""How well does the video classifier read the procedural dataset? Its bar is 98% per attribute.

Per attribute, the fraction of clips read exactly right (a set, such as the colours present,
must match as a whole) on N held-out clips and on N clips of the compositions split (colour/shape
pairs never drawn in training), as `kinema eval` reads them (fp32, no autocast). Set attributes
are also broken down by the number of objects in the clip, where the hard cases are.

    python benchmarks/classifier_accuracy.py --model runs/clf64 --num 1024 [--json docs/classifier_accuracy.json]

With `--ship DIR` the classifier is first written to DIR in float16 (what kinema ships in
kinema/assets/classifier) and that copy is the one measured.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from kinema.atomic import atomic_path  # noqa: E402
from kinema.checkpoint import save_component  # noqa: E402
from kinema.data.synthetic import SyntheticClips  # noqa: E402
from kinema.models import classifier  # noqa: E402
from kinema.models.classifier import ATTRIBUTES, load_classifier  # noqa: E402


def ship(model: classifier.VideoClassifier, dest: Path) -> None:
    """The classifier as a component folder with float16 weights (half the size; reads the same)."""
    if dest.exists() and set(p.name for p in dest.iterdir()) - {"config.json", "model.safetensors"}:
        sys.exit(f"error: {dest} holds more than a classifier (config.json, model.safetensors); not replacing it")
    state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    with atomic_path(dest, folder=True, replace=True) as tmp:
        save_component(tmp, model, model.config.to_dict(), state)


def measure(model, split: str, num: int) -> dict:
    clips = SyntheticClips(split, 0, model.config.frames, model.config.size, model.config.size, model.config.fps)
    logits, attrs = classifier.read_clips(model, clips, num, progress=split)
    target = classifier.targets(attrs)
    out = {"all": classifier.accuracy(logits, target)}
    counts = torch.tensor([a["num_objects"] for a in attrs])
    for n in (1, 2, 3):  # set attributes by object count
        keep = counts == n
        if not keep.any():
            continue
        acc = classifier.accuracy({k: v[keep] for k, v in logits.items()}, {k: v[keep] for k, v in target.items()})
        out[f"{n}_objects"] = {k: v for k, v in acc.items() if ATTRIBUTES[k][0] == "set"} | {"clips": int(keep.sum())}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="classifier folder or training run (default: the shipped classifier)")
    p.add_argument("--num", type=int, default=1024, help="clips per split (default 1024)")
    p.add_argument("--json", help="also write the figures to this JSON file")
    p.add_argument("--ship", help="write the classifier here in float16 first, and measure that copy")
    args = p.parse_args()
    model = load_classifier(args.model)
    if args.ship:
        ship(model, Path(args.ship))
        model = load_classifier(args.ship)
    start = time.time()
    result = {"benchmark": "classifier_accuracy", "model": args.ship or args.model or "shipped", "num": args.num,
              "params": sum(p.numel() for p in model.parameters())}
    for split in ("heldout", "compositions"):
        result[split] = measure(model, split, args.num)
        row = "  ".join(f"{k} {v:.1%}" for k, v in result[split]["all"].items())
        print(f"{split:12s} {row}")
        for n in (1, 2, 3):
            r = result[split].get(f"{n}_objects")
            if r is None:
                continue
            print(f"  {n} object(s), {r['clips']} clips: " + "  ".join(f"{k} {v:.1%}" for k, v in r.items() if k != "clips"))
    result["seconds"] = round(time.time() - start, 1)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
