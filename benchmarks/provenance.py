"""The watermark and the manifest, measured: imperceptibility, robustness per attack, false
positives on unmarked clips, and the time cost against generation.

    python benchmarks/provenance.py [--clips 32] [--unmarked 1000] [--footage DIR] [--json docs/provenance.json]

- Marked clips: the shipped model's own outputs (held-out captions, 17x64x64, 8 fps) and, at
  128x128, procedural clips; each marked with a random payload, saved as mp4 (as kinema writes).
- PSNR of marked against unmarked frames.
- Attacks, each alone and each combined with H.264 re-encoding at CRF 28: CRF 28, 0.5x downscale,
  a 10% crop (5% off each side), brightness +20% / -20%, contrast +20% / -20%, 8 -> 12 fps,
  trimming to the first second. Per attack: the true-positive rate and the payload's bit accuracy.
- False positives: `detect` on --unmarked unmarked clips (procedural real clips at several sizes,
  photos from scikit-image, and windows of --footage videos when given): the count detected
  (the binomial bound is in `watermark.false_positive_rate()`).
- Cost: seconds to mark and sign a clip against seconds to generate it.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from kinema.provenance import watermark as wm
from kinema.provenance.attacks import attacks, reencode


def marked_clips(n: int, folder: Path) -> tuple[list, list, list, float, float]:
    """(marked mp4 frames, unmarked frames, payloads, seconds generating, seconds marking + signing)."""
    import kinema
    from kinema.data.synthetic import SyntheticClips
    from kinema.provenance import add_watermark, sign
    from kinema.video import Video
    pipe = kinema.load()
    pipe.generate("a red circle", seed=0, progress=False, watermark=False)  # warm: the first call is not what a clip costs
    rng = np.random.default_rng(0)
    clips = SyntheticClips("heldout", 0, 17, 64, 64, 8.0)
    marked, plain, payloads, t_gen, t_mark = [], [], [], 0.0, 0.0
    for i in range(n):
        t0 = time.perf_counter()
        if i % 2 == 0:  # the model's own output
            v = pipe.generate(clips[i].caption, seed=i, progress=False, watermark=False)  # marked below
        else:  # a larger procedural clip
            v = SyntheticClips("heldout", 1, 17, 128, 128, 8.0)[i].video
        t1 = time.perf_counter()
        payload = int(rng.integers(0, 2 ** 32))
        m = add_watermark(v, payload)
        path = folder / f"m{i}.mp4"
        m.save(path)
        sign([path], {"model": "default", "mode": "generate", "seed": i})
        t2 = time.perf_counter()
        if i % 2 == 0:
            t_gen, t_mark = t_gen + (t1 - t0), t_mark + (t2 - t1)
        marked.append(Video.read(path).frames)
        plain.append((m.frames, v.frames))  # marked and unmarked frames before encoding (the mark's own PSNR)
        payloads.append(payload)
    return marked, plain, payloads, t_gen, t_mark


def unmarked_set(n: int, footage: str | None) -> list[np.ndarray]:
    from kinema.data.synthetic import SyntheticClips
    from kinema.video import Video
    out = []
    sizes = [(64, 64), (48, 80), (128, 128), (96, 160)]
    k = 0
    while len(out) < n * 3 // 4:
        h, w = sizes[k % len(sizes)]
        out.append(SyntheticClips("heldout", 7, 9, h, w, 8.0)[k].frames)
        k += 1
    try:
        from skimage import data as skdata
        for name in ("astronaut", "coffee", "chelsea", "rocket", "camera", "page", "moon", "horse"):
            img = np.asarray(getattr(skdata, name)())
            img = np.repeat(img[..., None], 3, -1) if img.ndim == 2 else img[..., :3]
            img = (img > 0).astype(np.uint8) * 255 if img.dtype == bool else img.astype(np.uint8)
            out.append(Video(img[None]).resize(128, 128, "crop").frames)
    except Exception:
        pass
    if footage:
        for f in sorted(Path(footage).iterdir()):
            if len(out) >= n:
                break
            try:
                v = Video.read(f, height=64, width=96, fit="crop", fps=8.0, max_frames=64)
            except Exception:
                continue
            out += [v.frames[j:j + 17] for j in range(0, max(1, v.num_frames - 16), 8)]
    while len(out) < n:
        h, w = sizes[k % len(sizes)]
        out.append(SyntheticClips("train", 9, 9, h, w, 8.0)[k].frames)
        k += 1
    return out[:n]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clips", type=int, default=32, help="marked clips (half the model's, half 128x128 procedural)")
    p.add_argument("--unmarked", type=int, default=1000, help="unmarked clips for the false-positive count")
    p.add_argument("--footage", help="a folder of real videos: windows join the unmarked set")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--figure", help="write a png here: four of the model's clips at 4x zoom, unmarked, marked and "
                                    "the difference x4 (does the mark show?)")
    args = p.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="kinema-prov-"))
    marked, plain, payloads, t_gen, t_mark = marked_clips(args.clips, folder)
    if args.figure:
        zoom_figure([plain[i] for i in range(0, min(8, len(plain)), 2)], args.figure)
    psnr = [10 * np.log10(255 ** 2 / max(((a.astype(float) - b) ** 2).mean(), 1e-9)) for a, b in plain]
    table, wrong = {}, 0
    for name, attack in attacks(8.0).items():
        for again in (False, True):
            if name == "none" and again:
                name_r = "CRF 28"
            elif again:
                name_r = f"{name} + CRF 28"
            else:
                name_r = name
            hits, bits, read = [], [], []
            for frames, payload in zip(marked, payloads):
                x = attack(frames)
                if again:
                    x = reencode(x, 8.0, 28)
                d = wm.detect(x)
                hits.append(d["detected"])
                read.append(d["payload"] == payload)
                wrong += d["payload"] is not None and d["payload"] != payload
                got = d["payload"] if d["payload"] is not None else d["payload_guess"]
                bits.append(np.mean([((got >> i) & 1) == ((payload >> i) & 1) for i in range(32)]))
            table[name_r] = {"true_positive_rate": round(float(np.mean(hits)), 3),
                             "payload_read": round(float(np.mean(read)), 3),
                             "bit_accuracy": round(float(np.mean(bits)), 3)}
            print(name_r, table[name_r], flush=True)
    unmarked = unmarked_set(args.unmarked, args.footage)
    false = sum(wm.detect(x)["detected"] for x in unmarked)
    result = {"clips": args.clips, "psnr_mean": round(float(np.mean(psnr)), 2), "psnr_min": round(float(np.min(psnr)), 2),
              "attacks": table, "wrong_payloads": int(wrong), "unmarked": len(unmarked), "false_positives": int(false),
              "false_positive_bound": wm.false_positive_rate(),
              "seconds_generate_per_clip": round(t_gen / max(1, (args.clips + 1) // 2), 4),
              "seconds_mark_and_sign_per_clip": round(t_mark / max(1, (args.clips + 1) // 2), 4)}
    result["cost_fraction"] = round(result["seconds_mark_and_sign_per_clip"] / result["seconds_generate_per_clip"], 3)
    text = json.dumps(result, indent=1)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)


def zoom_figure(pairs: list, path: str, zoom: int = 4) -> None:
    """Rows of (unmarked, marked, difference x4 around grey) middle frames, enlarged `zoom` times."""
    from kinema.video import Video
    rows = []
    for m, u in pairs:
        f = len(u) // 2
        diff = np.clip((m[f].astype(int) - u[f]) * 4 + 128, 0, 255).astype(np.uint8)
        rows.append(np.concatenate([u[f], m[f], diff], 1))
    img = np.concatenate(rows, 0)
    Video(img[None]).resize(img.shape[0] * zoom, img.shape[1] * zoom, "stretch").save(path)


if __name__ == "__main__":
    main()
