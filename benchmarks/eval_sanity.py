"""Can kinema's Fréchet distance be trusted? Two sanity checks on real clips.

    python benchmarks/eval_sanity.py [--classifier DIR] [--num 256] [--out docs/eval_sanity.json]

1. Corruption ladder: clips of the held-out split, corrupted at three strengths each (Gaussian
   noise, blur, shuffled frames, frozen frames, time reversal, speed change), against a disjoint
   clean set of the same size. `fvd` must rise with strength, and the temporal-only corruptions
   (shuffle, frozen, reversal), which leave every single frame intact, must be seen too: I3D
   FVD is known to miss them (the content bias of Ge et al. 2024). `fd_frames` (per-frame
   features) is shown beside it: it should see the spatial corruptions and be blind to the
   temporal ones, which is what separates appearance from motion.
2. Real-vs-real floor against N (64 ... 2048): the distance between two disjoint real sets,
   which is what a perfect model would score; its size and spread choose the default N.
"""

import argparse
import json
import time

import cv2
import numpy as np

from kinema import metrics
from kinema.data.synthetic import SyntheticClips
from kinema.models.classifier import classifier_features, load_classifier
from kinema.video import Video

STRENGTHS = {"noise": (8, 24, 64), "blur": (0.6, 1.2, 2.4), "shuffle": (0.25, 0.5, 1.0),
             "frozen": (0.25, 0.5, 1.0), "reverse": (0.25, 0.5, 1.0), "speed": (1.5, 2, 3)}


def corrupt(kind: str, s: float, clips: list[np.ndarray], long: list[np.ndarray], rng) -> list[np.ndarray]:
    """Corrupted copies of uint8 clips (T, H, W, 3); `long` holds the same scenes rendered 3x longer."""
    out = []
    for clip, slow in zip(clips, long):
        T = len(clip)
        if kind == "noise":
            c = np.clip(clip + rng.normal(0, s, clip.shape), 0, 255).astype(np.uint8)
        elif kind == "blur":
            c = np.stack([cv2.GaussianBlur(f, (0, 0), s) for f in clip])
        elif kind == "shuffle":  # permute a random fraction s of the frames among themselves
            idx = np.arange(T)
            pick = rng.choice(T, max(2, int(round(s * T))), replace=False)
            idx[pick] = rng.permutation(pick)
            c = clip[idx]
        elif kind == "frozen":  # the last fraction s of the clip holds one frame
            k = T - int(round(s * (T - 1)))
            c = np.concatenate([clip[:k], np.repeat(clip[k - 1: k], T - k, 0)])
        elif kind == "reverse":  # a fraction s of the clips play backwards
            c = clip[::-1] if rng.random() < s else clip
        else:  # speed: s times faster (every s-th frame of the longer rendering)
            c = slow[np.round(np.arange(T) * s).astype(int)]
        out.append(np.ascontiguousarray(c))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--classifier", help="classifier folder (default: the shipped one)")
    ap.add_argument("--num", type=int, default=256, help="clips per set for the ladder")
    ap.add_argument("--sizes", default="64,128,256,512,1024,2048", help="N values for the real-vs-real floor")
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args()
    t0 = time.perf_counter()
    clf = load_classifier(args.classifier)
    c = clf.config
    n_max = max(args.num, *map(int, args.sizes.split(",")))
    clips = SyntheticClips("heldout", 0, c.frames, c.size, c.size, c.fps)
    frames = [clips[i].frames for i in range(2 * n_max)]
    feats = lambda fs: classifier_features(clf, [Video(f, c.fps) for f in fs])  # noqa: E731
    clean_a, clean_b = frames[: args.num], frames[n_max: n_max + args.num]
    long_clips = SyntheticClips("heldout", 0, 3 * c.frames, c.size, c.size, c.fps)
    long = [long_clips[i].frames for i in range(args.num)]
    ref_clip, ref_frames = feats(clean_b)
    ref_frames = ref_frames.reshape(-1, ref_frames.shape[-1])

    def score(fs):
        clip_f, frame_f = feats(fs)
        return (round(metrics.features_fd(clip_f, ref_clip), 3),
                round(metrics.features_fd(frame_f.reshape(-1, frame_f.shape[-1]), ref_frames), 3))

    fvd0, fd0 = score(clean_a)
    ladder = {"clean": {"fvd": fvd0, "fd_frames": fd0}}
    print(f"{'corruption':10s} {'strength':>8s} {'fvd':>9s} {'fd_frames':>10s}   (clean: fvd {fvd0}, fd_frames {fd0})")
    for kind, strengths in STRENGTHS.items():
        for s in strengths:
            fvd, fd = score(corrupt(kind, s, clean_a, long, np.random.default_rng(0)))
            ladder[f"{kind}@{s}"] = {"fvd": fvd, "fd_frames": fd}
            print(f"{kind:10s} {s:8g} {fvd:9.3f} {fd:10.3f}")
    floor = {}
    for n in map(int, args.sizes.split(",")):
        a, _ = feats(frames[:n])
        b, _ = feats(frames[n_max: n_max + n])
        floor[n] = {"fvd_floor": round(metrics.features_fd(a, b), 3), "std": round(metrics.bootstrap_fd(a, b), 3)}
        print(f"real-vs-real floor N={n:5d}: {floor[n]['fvd_floor']:.3f} ± {floor[n]['std']:.3f}")
    result = {"benchmark": "eval_sanity", "num": args.num, "ladder": ladder, "floor": floor,
              "seconds": round(time.perf_counter() - t0, 1)}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
