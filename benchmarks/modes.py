"""Does one model serve every conditioning mode? The measured bars of the conditioning issue.

    python benchmarks/modes.py --model runs/z22m [--num 16] [--json docs/modes.json] [--figure docs/figures/modes.png]

Sources are held-out procedural clips (64x64, 17 frames) and their captions.

- image-to-video: PSNR of output frame 0 against the given image, next to the autoencoder's own
  round trip of that image (decode(encode(image))); the gap should be at most 1 dB;
- interpolation and keyframes: the same for the first and last frame of `interpolate`, and for a
  keyframe in the middle; `psnr_roundtrip_held` is also given: the round trip of the image held
  still for 4 frames, which is how a frame after 0 is encoded;
- extension: the mean absolute difference of consecutive frames across window boundaries against
  the same inside windows (at most 1.5x); peak memory of `kinema generate --seconds 60` against
  `--seconds 10` (separate processes, at most 1.2x); whether the classifier reads the prompted
  colour and shape in the last 17 frames of 60-second videos;
- editing: outside a mask, whether the output is the source's pixels, and its PSNR against the
  source's round trip (the bar: at least 35 dB); the distance from the source at strengths
  0 ... 1 (should grow).
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from kinema.data.synthetic import SyntheticClips
from kinema.models.classifier import load_classifier, readings
from kinema.pipeline import load
from kinema.video import Video
from kinema.viz import contact_sheet

LONG_PROMPTS = [("red", "circle", "bounces"), ("blue", "square", "spins"), ("green", "ring", "stays still"),
                ("yellow", "star", "bounces"), ("magenta", "triangle", "spins")]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 99.0 if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def roundtrip(pipe, image: np.ndarray, held: bool) -> np.ndarray:
    """What the autoencoder makes of an image: alone (frame 0), or held still for 4 frames after it
    (how a frame after 0 is given)."""
    frames = np.repeat(image[None], 5 if held else 1, 0)
    with torch.no_grad():
        return pipe._decode(pipe.encode(Video(frames), image.shape[0], image.shape[1]), 8.0)[0].frames[-1]


def mean_diff(frames: np.ndarray, idx) -> float:
    """Mean absolute difference between frame i and i - 1 over the indices i."""
    f = frames.astype(np.float32)
    return float(np.mean([np.abs(f[i] - f[i - 1]).mean() for i in idx]))


def peak_memory(model: str, seconds: float, out: Path) -> dict:
    """Run `kinema generate --seconds` in a fresh process; its --json report."""
    cmd = [sys.executable, "-m", "kinema", "generate", "a red circle bounces", "--model", model, "--seconds",
           str(seconds), "--out", str(out), "--json"]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="model or run folder (trained with condition masks)")
    ap.add_argument("--num", type=int, default=16, help="source clips per measurement (default: 16)")
    ap.add_argument("--long", type=int, default=5, help="60-second videos read by the classifier (default: 5)")
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--figure", help="write a PNG contact sheet of every mode here")
    args = ap.parse_args()
    t_start = time.perf_counter()
    pipe = load(args.model)
    H, W, F = pipe.defaults["height"], pipe.defaults["width"], pipe.defaults["frames"]
    clips = [SyntheticClips("heldout", frames=F, height=H, width=W)[i] for i in range(args.num)]
    res, sheet = {"model": args.model, "num": args.num}, []

    # image-to-video
    out, rt = [], []
    for i, c in enumerate(clips):
        v = pipe.generate(c.caption, image=Video(c.frames[:1]), seed=i, progress=False, watermark=False)
        out.append(psnr(v.frames[0], c.frames[0]))
        rt.append(psnr(roundtrip(pipe, c.frames[0], False), c.frames[0]))
        if i < 2:
            sheet.append((v, f"image-to-video: {c.caption[:60]}"))
    res["image_to_video"] = {"psnr_frame0": np.mean(out), "psnr_roundtrip": np.mean(rt), "gap_db": np.mean(rt) - np.mean(out)}
    print("image-to-video", res["image_to_video"], flush=True)

    # interpolation (first + last) and a middle keyframe
    first, last, key, rt0, rtk, rt1, rt1k = [], [], [], [], [], [], []
    mid = (F - 1) // 2
    for i, c in enumerate(clips):
        v = pipe.interpolate(Video(c.frames[:1]), Video(c.frames[-1:]), c.caption, seed=i, progress=False, watermark=False)
        first.append(psnr(v.frames[0], c.frames[0]))
        last.append(psnr(v.frames[-1], c.frames[-1]))
        rt0.append(psnr(roundtrip(pipe, c.frames[-1], True), c.frames[-1]))
        rt1.append(psnr(roundtrip(pipe, c.frames[-1], False), c.frames[-1]))
        k = pipe.generate(c.caption, keyframes={0: Video(c.frames[:1]), mid: Video(c.frames[mid:mid + 1])},
                          seed=i, progress=False, watermark=False)
        key.append(psnr(k.frames[mid], c.frames[mid]))
        rtk.append(psnr(roundtrip(pipe, c.frames[mid], True), c.frames[mid]))
        rt1k.append(psnr(roundtrip(pipe, c.frames[mid], False), c.frames[mid]))
        if i < 1:
            sheet += [(v, "interpolate first -> last"), (k, f"keyframes 0 and {mid}")]
    res["interpolate"] = {"psnr_first": np.mean(first), "psnr_last": np.mean(last), "psnr_roundtrip": np.mean(rt1),
                          "psnr_roundtrip_held": np.mean(rt0), "gap_last_db": np.mean(rt1) - np.mean(last)}
    res["keyframe"] = {"psnr_keyframe": np.mean(key), "psnr_roundtrip": np.mean(rt1k), "psnr_roundtrip_held": np.mean(rtk),
                       "gap_db": np.mean(rt1k) - np.mean(key)}
    print("interpolate", res["interpolate"], "keyframe", res["keyframe"], flush=True)

    # extension seams
    seam, inside = [], []
    for i, c in enumerate(clips[: max(2, args.num // 4)]):
        v = pipe.extend(c.video, c.caption, 6.0, seed=i, progress=False, watermark=False)
        keep = 5  # 1 + 4 (context - 1) frames of context, context = 2
        bounds = list(range(F, v.num_frames, F - keep))
        seam.append(mean_diff(v.frames, bounds))
        inside.append(mean_diff(v.frames, [j for j in range(F + 1, v.num_frames) if j not in bounds]))
        if i < 1:
            sheet.append((Video(v.frames[F - 4: F + 4 + 12]), "extend: across the first window boundaries"))
    res["extend"] = {"seam_diff": np.mean(seam), "inside_diff": np.mean(inside), "ratio": np.mean(seam) / np.mean(inside)}
    print("extend", res["extend"], flush=True)

    # long videos: memory and what the classifier reads at the end
    tmp = Path(args.json or "modes.json").with_suffix(".tmp.mp4")
    mem = {s: peak_memory(args.model, s, tmp) for s in (10, 60)}
    tmp.unlink(missing_ok=True)
    res["long_memory"] = {"peak_mb_10s": mem[10]["peak_memory_mb"], "peak_mb_60s": mem[60]["peak_memory_mb"],
                          "ratio": mem[60]["peak_memory_mb"] / mem[10]["peak_memory_mb"],
                          "wall_seconds_60s": mem[60]["seconds"], "windows_60s": mem[60]["windows"]}
    clf, hits = load_classifier(), []
    for i, (color, shape, motion) in enumerate(LONG_PROMPTS[: args.long]):
        v = pipe.generate(f"a {color} {shape} {motion}", seconds=60, seed=i, progress=False, watermark=False)
        r = readings(clf, [Video(v.frames[-17:], v.fps)])[0]
        hits.append({"prompt": f"a {color} {shape} {motion}", "colors": r["colors"]["value"], "shapes": r["shapes"]["value"],
                     "ok": color in r["colors"]["value"] and shape in r["shapes"]["value"]})
        if i < 1:
            sheet.append((Video(v.frames[-17:]), f"the last 2 s of 60 s: a {color} {shape} {motion}"))
    res["long_classifier"] = {"read_right": sum(h["ok"] for h in hits), "of": len(hits), "runs": hits}
    print("long", res["long_memory"], res["long_classifier"], flush=True)

    # editing
    box = np.zeros((H, W, 3), np.uint8)
    box[H // 4: 3 * H // 4, W // 4: 3 * W // 4] = 255
    outside = box[..., 0] == 0
    kept, exact, dist = [], [], {s: [] for s in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)}
    for i, c in enumerate(clips):
        src_rt = pipe._decode(pipe.encode(c.video, H, W), 8.0)[0].frames
        e = pipe.edit(c.video, clips[(i + 1) % len(clips)].caption, mask=Video(box), seed=i, progress=False, watermark=False)
        kept.append(psnr(e.frames[:, outside], src_rt[:, outside]))
        exact.append(bool(np.array_equal(e.frames[:, outside], c.frames[:, outside])))
        for s in dist:
            d = pipe.edit(c.video, clips[(i + 1) % len(clips)].caption, strength=s, seed=i, progress=False, watermark=False)
            dist[s].append(float(np.abs(d.frames.astype(np.float32) - c.frames.astype(np.float32)).mean()))
        if i < 1:
            sheet += [(c.video, "edit: source"), (e, "edit with a centre mask")]
    res["edit"] = {"psnr_outside_mask_vs_roundtrip": np.mean(kept), "min_psnr_outside_mask_vs_roundtrip": np.min(kept),
                   "outside_mask_is_the_source": f"{sum(exact)} of {len(exact)}",
                   "distance_by_strength": {str(s): np.mean(v) for s, v in dist.items()},
                   "monotonic": bool(np.all(np.diff([np.mean(v) for v in dist.values()]) > 0))}
    print("edit", res["edit"], flush=True)
    res["seconds"] = round(time.perf_counter() - t_start, 1)
    res = json.loads(json.dumps(res, default=float))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    if args.figure:
        Video(contact_sheet([v for v, _ in sheet], [t for _, t in sheet], frames=8)).save(args.figure)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
