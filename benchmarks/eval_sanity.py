"""Can kinema's Fréchet distance be trusted? Two sanity checks on real clips.

    python benchmarks/eval_sanity.py [--classifier DIR] [--num 256] [--out docs/eval_sanity.json]

1. Corruption ladder: clips of the held-out split, corrupted at three strengths each (Gaussian
   noise, blur, shuffled frames, frozen frames, time reversal, speed change), against a disjoint
   clean set of the same size. `fvd` must rise with strength, and the temporal corruptions must
   be seen too, not just the spatial ones: I3D FVD is known to miss them (the content bias of
   Ge et al. 2024). `fd_frames` (each frame embedded alone) is shown beside it: shuffling and
   reversal keep every frame, so it must not move for them at all (checked), which is what
   separates appearance from motion; freezing repeats one frame and drops others, so it may.
   Time reversal is almost a symmetry of this dataset (left <-> right, grow <-> shrink, pan
   left <-> pan right: a reversed clip is another likely clip), so a distance between
   *distributions* should barely see it; the paired check does: `motions` is the fraction of
   corrupted clips whose classifier reading of the motions still matches the clip's caption
   (what `kinema eval` reports as adherence). `speed@1` is the control for the speed rungs:
   the same scenes from the longer rendering, not sped up (objects start elsewhere on it).
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
from kinema.eval_suite import attribute_values
from kinema.models.classifier import classifier_features, load_classifier, readings
from kinema.video import Video

STRENGTHS = {"noise": (8, 24, 64), "blur": (0.6, 1.2, 2.4), "shuffle": (0.25, 0.5, 1.0),
             "frozen": (0.25, 0.5, 1.0), "reverse": (0.25, 0.5, 1.0), "speed": (1, 1.5, 2, 3)}
KEEPS_FRAMES = ("shuffle", "reverse")  # the same frames in another order


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
        else:  # speed: s times faster (frame round(i s) of the longer rendering; s = 1 is the control)
            c = slow[np.floor(np.arange(T) * s + 0.5).astype(int)]
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
    sizes = sorted(map(int, args.sizes.split(",")))
    n_max = max(args.num, *sizes)
    clips = SyntheticClips("heldout", 0, c.frames, c.size, c.size, c.fps)
    videos = lambda fs: [Video(f, c.fps) for f in fs]  # noqa: E731
    feats = lambda fs: classifier_features(clf, videos(fs))  # noqa: E731
    clean_a = [clips[i].frames for i in range(args.num)]
    truth = [attribute_values(clips[i].attributes)["motions"] for i in range(args.num)]
    clean_b = [clips[i].frames for i in range(n_max, n_max + args.num)]
    long_clips = SyntheticClips("heldout", 0, 3 * c.frames, c.size, c.size, c.fps)
    long = [long_clips[i].frames for i in range(args.num)]
    ref_clip, ref_frames = feats(clean_b)
    ref_frames = ref_frames.reshape(-1, ref_frames.shape[-1])

    def score(fs):
        clip_f, frame_f = feats(fs)
        read = [sorted(r["motions"]["value"]) for r in readings(clf, videos(fs))]
        return {"fvd": round(metrics.features_fd(clip_f, ref_clip), 3),
                "fd_frames": round(metrics.features_fd(frame_f.reshape(-1, frame_f.shape[-1]), ref_frames), 3),
                "motions": round(float(np.mean([r == t for r, t in zip(read, truth)])), 3)}

    ladder = {"clean": score(clean_a)}
    print(f"{'corruption':10s} {'strength':>8s} {'fvd':>9s} {'fd_frames':>10s} {'motions':>8s}")
    print(f"{'clean':10s} {'':8s} {ladder['clean']['fvd']:9.3f} {ladder['clean']['fd_frames']:10.3f} "
          f"{ladder['clean']['motions']:8.0%}")
    for kind, strengths in STRENGTHS.items():
        for s in strengths:
            row = ladder[f"{kind}@{s}"] = score(corrupt(kind, s, clean_a, long, np.random.default_rng(0)))
            print(f"{kind:10s} {s:8g} {row['fvd']:9.3f} {row['fd_frames']:10.3f} {row['motions']:8.0%}")
            if kind in KEEPS_FRAMES:  # same frames, other order: per-frame statistics cannot move
                assert abs(row["fd_frames"] - ladder["clean"]["fd_frames"]) < 1e-3 * (1 + row["fd_frames"]), row
    everything = classifier_features(clf, videos([clips[i].frames for i in range(2 * n_max)]), per_frame=False)[0]
    floor = {}
    for n in sizes:  # first n of each disjoint half
        a, b = everything[:n], everything[n_max: n_max + n]
        floor[n] = {"fvd_floor": round(metrics.features_fd(a, b), 3), "std": round(metrics.bootstrap_fd(a, b), 3)}
        print(f"real-vs-real floor N={n:5d}: {floor[n]['fvd_floor']:.3f} ± {floor[n]['std']:.3f}")
    result = {"benchmark": "eval_sanity", "classifier": args.classifier or "shipped", "num": args.num,
              "ladder": ladder, "floor": floor, "seconds": round(time.perf_counter() - t0, 1)}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
