"""What the default model does with real footage in every mode: a contact sheet for the model card.

    python benchmarks/real_inputs_figure.py --footage DIR [--model DIR] [--out docs/figures/real_inputs.png]

Takes the first and the middle video under --footage (real clips, never trained on), reads them
at the model's 8 fps and the trained size nearest their aspect, and shows one row each, seed 0,
not picked: the source; its autoencoder round trip; image-to-video from its first frame;
extension by 1 s; an edit at strength 0.5; interpolation from its first to its last frame. Each
row's caption gives the PSNR of frame 0 against the source's round trip (0 dB apart: frame 0
is exactly the round trip) and whether the frames were flagged out of domain.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

import kinema
from kinema.checks import source_size
from kinema.video import Video, probe
from kinema.viz import contact_sheet

SUFFIXES = {".mp4", ".mkv", ".mov", ".webm", ".avi"}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--footage", required=True, type=Path)
    ap.add_argument("--model")
    ap.add_argument("--prompt", default="a person walks, the camera holds still")
    ap.add_argument("--out", type=Path, default=Path("docs/figures/real_inputs.png"))
    a = ap.parse_args()
    files = sorted(p for p in a.footage.rglob("*") if p.suffix.lower() in SUFFIXES)
    if not files:
        sys.exit(f"error: no videos under {a.footage}")
    pipe = kinema.load(a.model)
    videos, captions = [], []
    for path in [files[0], files[len(files) // 2]]:
        h, w = source_size(pipe.defaults, probe(path))
        src = Video.read(path, fps=8.0, height=h, width=w)
        src = Video(src.frames[:17], 8.0)
        rt = pipe.roundtrip([src])[0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dom = pipe.given_domain([src], h, w, warn=False)
            first = Video(src.frames[:1], 8.0)
            last = Video(src.frames[-1:], 8.0)
            rows = [("source", src), (f"round trip ({psnr(rt.frames, src.frames):.1f} dB)", rt),
                    ("image-to-video", pipe.generate(a.prompt, image=first, height=h, width=w, progress=False)),
                    ("extended by 1 s", pipe.extend(src, a.prompt, 1.0, height=h, width=w, progress=False)),
                    ("edit, strength 0.5", pipe.edit(src, a.prompt, strength=0.5, height=h, width=w, progress=False)),
                    ("interpolated first -> last", pipe.interpolate(first, last, a.prompt, height=h, width=w,
                                                                    progress=False))]
        i2v0 = rows[2][1].frames[0]
        for label, v in rows:
            videos.append(v)
            note = f" (frame 0 vs round trip: {psnr(i2v0, rt.frames[0]):.1f} dB)" if label == "image-to-video" else ""
            flag = f"; in_domain {dom['in_domain']}" if dom and label == "source" else ""
            captions.append(f"{path.name}: {label}{note}{flag}")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(contact_sheet(videos, captions, frames=6, scale=2)).save(a.out)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
