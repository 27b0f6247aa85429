"""Fit the out-of-domain scores kinema ships (kinema.domain), and measure them on real footage.

    python benchmarks/fit_domains.py [--only classifier|model] [--model DIR] [--footage DIR] [--write] [--json PATH]

Each is a logistic score telling procedural clips (the training data: --fit clips of the train
split, whole and as stills) from the natural source's filmed photographs and dead leaves
(outlier exposure, --fit clips of seed 0), its threshold a margin over the highest score of
held-out and compositions clips:
- the classifier's (`kinema classify`: in_domain) on `VideoClassifier.domain_features`;
- the generating model's (warnings of generate --image, edit, extend, interpolate) on
  `latent_features` of the model's latents.
Then the share of clips each flags: procedural held-out clips of another seed (must be 0),
natural clips of another seed, and real footage windows (--footage; never trained on), as clips
and as stills. --write stores domain.safetensors in the classifier and model folders.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from autoencoder_real import footage_windows  # noqa: E402

from kinema.data.natural import NaturalClips  # noqa: E402
from kinema.data.synthetic import SyntheticClips  # noqa: E402
from kinema.domain import MARGIN, fit, latent_features  # noqa: E402
from kinema.models.classifier import ASSET, load_classifier, prepare  # noqa: E402
from kinema.pipeline import load  # noqa: E402
from kinema.video import Video  # noqa: E402


def procedural(split: str, seed: int, n: int, start: int = 0) -> list[Video]:
    clips = SyntheticClips(split, seed, 17, 64, 64, 8.0)
    return [clips[start + i].video for i in range(n)]


@torch.no_grad()
def classifier_features(model, videos: list[Video]) -> torch.Tensor:
    out = []
    for i in range(0, len(videos), 32):
        out.append(model.domain_features(torch.stack([prepare(v, model.config) for v in videos[i:i + 32]])))
    return torch.cat(out)


@torch.no_grad()
def model_features(pipe, videos: list[Video], still: bool = False) -> torch.Tensor:
    out = []
    for i in range(0, len(videos), 16):
        x = torch.stack([(Video(v.frames[:1], v.fps) if still else v).to_tensor() for v in videos[i:i + 16]])
        out.append(latent_features(pipe._encode(x).cpu()))
    return torch.cat(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--classifier", default=str(ASSET))
    ap.add_argument("--model", default=None, help="model folder (default: the shipped one)")
    ap.add_argument("--footage", help="folder of real videos (never trained on) to measure on")
    ap.add_argument("--fit", type=int, default=1024, help="procedural training clips to fit on")
    ap.add_argument("--calibrate", type=int, default=512, help="held-out (and as many compositions) clips")
    ap.add_argument("--write", action="store_true", help="store the fitted statistics in the folders")
    ap.add_argument("--only", choices=["classifier", "model"], help="fit one of the two")
    ap.add_argument("--margin", type=float, default=None,
                    help="threshold margin over the highest calibration score, logits (default: kinema.domain.MARGIN "
                         "for the classifier, 2 for the model, whose latent statistics separate less)")
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.set_grad_enabled(False)
    train = procedural("train", 0, a.fit)
    outside = [NaturalClips(0).clip((17, 64, 64), i).video for i in range(a.fit)]
    calib = procedural("heldout", 0, a.calibrate) + procedural("compositions", 0, a.calibrate)
    tests = {"procedural heldout (seed 7)": procedural("heldout", 7, 256),
             "procedural compositions (seed 7)": procedural("compositions", 7, 256)}
    nat = NaturalClips(11)
    tests["natural source (seed 11)"] = [nat.clip((17, 64, 64), i).video for i in range(128)]
    if a.footage:
        x, _ = footage_windows(Path(a.footage), 64)
        tests["real footage windows"] = [Video.from_tensor(v) for v in x]
    results: dict = {}

    for part in [a.only] if a.only else ["classifier", "model"]:
        (fit_classifier if part == "classifier" else fit_model)(a, train, outside, calib, tests, results)
    for part, r in results.items():
        print(f"{part}: threshold {r['threshold']:.3f}; share flagged out of domain (clips / stills), median score")
        for name, f in r["flagged"].items():
            print(f"  {name:34s} {f['clips']:6.1%} / {f['stills']:6.1%}   {f['median_score']:.2f}")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))


def both(features, videos) -> torch.Tensor:
    """Features of the clips and of their first frames as stills."""
    return torch.cat([features(videos), features([Video(v.frames[:1], v.fps) for v in videos])])


def fit_classifier(a, train, outside, calib, tests, results) -> None:
    clf = load_classifier(a.classifier)
    feats = lambda videos: classifier_features(clf, videos)  # noqa: E731
    dom = fit(both(feats, train), both(feats, outside), both(feats, calib),
              what="kinema's procedural clips of coloured shapes", margin=a.margin or MARGIN)
    results["classifier"] = {"threshold": dom.threshold, "flagged": {}}
    for name, videos in tests.items():
        s = dom.score(classifier_features(clf, videos))
        stills = dom.score(classifier_features(clf, [Video(v.frames[:1], v.fps) for v in videos]))
        results["classifier"]["flagged"][name] = {"clips": float((s > dom.threshold).float().mean()),
                                                  "stills": float((stills > dom.threshold).float().mean()),
                                                  "median_score": float(s.median())}
    if a.write:
        print("wrote", dom.save(Path(a.classifier)))


def fit_model(a, train, outside, calib, tests, results) -> None:
    pipe = load(a.model)
    feats = lambda videos: model_features(pipe, videos)  # noqa: E731
    mdom = fit(both(feats, train), both(feats, outside), both(feats, calib),
               what="kinema's procedural clips of coloured shapes", margin=a.margin or 2.0)
    results["model"] = {"threshold": mdom.threshold, "flagged": {}}
    for name, videos in tests.items():
        s = mdom.score(model_features(pipe, videos))
        stills = mdom.score(model_features(pipe, videos, still=True))
        results["model"]["flagged"][name] = {"clips": float((s > mdom.threshold).float().mean()),
                                             "stills": float((stills > mdom.threshold).float().mean()),
                                             "median_score": float(s.median())}
    if a.write:
        from kinema.pipeline import _model_path
        print("wrote", mdom.save(_model_path(a.model)))


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
