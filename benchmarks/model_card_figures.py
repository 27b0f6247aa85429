"""Pictures for docs/MODEL_CARD.md: what the default model does well and where it fails, each clip
captioned with its prompt and what the shipped classifier reads in it.

    python benchmarks/model_card_figures.py [--model DIR] [--out docs/figures]

Writes model_card_good.png (one object, every colour and a few motions; 64x64, 48x80 and 80x48;
33 frames) and model_card_failures.png (two and three objects, held-out colour/shape pairs,
rare motions, camera moves): contact sheets, 5 frames a clip.
"""

import argparse
from pathlib import Path

from kinema.models.classifier import classify, load_classifier
from kinema.pipeline import load
from kinema.video import Video
from kinema.viz import contact_sheet

GOOD = [  # (prompt, frames, height, width)
    ("a large red circle moves to the right", 17, 64, 64),
    ("a yellow square moves down", 17, 64, 64),
    ("a green star moves left", 17, 64, 64),
    ("a blue triangle moves up", 17, 64, 64),
    ("a magenta ring moves up and to the right", 17, 64, 64),
    ("a cyan circle moves left quickly", 17, 48, 80),
    ("a large blue square moves down", 17, 80, 48),
    ("a red star moves right slowly", 33, 64, 64),
]
HARD = [
    ("a red circle moves left while a blue square moves right", 17, 64, 64),
    ("a small yellow star moves up, a green ring moves down and a magenta square stays still", 17, 64, 64),
    ("a red star moves right", 17, 64, 64),  # held-out colour/shape pairs (the compositions split)
    ("a cyan square moves down", 17, 64, 64),
    ("a blue circle rotates", 17, 64, 64),
    ("a green triangle grows", 17, 64, 64),
    ("a yellow ring bounces, the camera pans left", 17, 64, 64),
    ("a large magenta star shrinks, the camera zooms in", 17, 64, 64),
]


def sheet(pipe, clf, cases, path: Path) -> None:
    videos, captions = [], []
    for i, (prompt, frames, height, width) in enumerate(cases):
        v = pipe.generate(prompt, frames=frames, height=height, width=width, seed=i, progress=False)
        read = classify(v, clf)["caption"]
        videos.append(v)
        captions.append(f"{prompt}  [{frames}x{height}x{width}]  -> read: {read}")
    Video(contact_sheet(videos, captions)).save(path)
    print(f"wrote {path}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    ap.add_argument("--out", default="docs/figures", help="folder for the two PNGs")
    args = ap.parse_args()
    pipe, clf = load(args.model), load_classifier()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sheet(pipe, clf, GOOD, out / "model_card_good.png")
    sheet(pipe, clf, HARD, out / "model_card_failures.png")


if __name__ == "__main__":
    main()
