"""A folder of mixed real-world files, made in a second or two for the tests: sizes, frame rates
and codecs differ, one has an audio track, one a variable frame rate, one a scene cut, one is
truncated, one is not a video at all; captions come from .txt files, metadata.jsonl, or nowhere."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from kinema.data.synthetic import SyntheticClips
from kinema.video import Video


def scene(index: int, frames: int, height: int, width: int, invert: bool = False) -> np.ndarray:
    """A procedural clip at 8 fps (uint8 T, H, W, 3); `invert` makes it look like another place."""
    x = SyntheticClips("train", 3, frames, height, width, 8.0)[index].frames
    return 255 - x if invert else x


def write(frames: np.ndarray, path: Path, fps: float, codec: str = "libx264", audio: bool = False,
          pts: list[int] | None = None, time_base: Fraction | None = None) -> Path:
    """Encode with PyAV; `pts` (in `time_base` units) makes a variable-frame-rate file."""
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
        s.height, s.width = frames.shape[1:3]
        s.pix_fmt = "yuv420p"
        if time_base is not None:
            s.codec_context.time_base = time_base
            s.time_base = time_base
        a = c.add_stream("aac", rate=16000) if audio else None
        for i, f in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
            if pts is not None:
                frame.pts, frame.time_base = pts[i], time_base
            c.mux(s.encode(frame))
        c.mux(s.encode(None))
        if a is not None:  # two seconds of a quiet tone
            t = np.arange(32000) / 16000
            tone = (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            for k in range(0, len(tone), 1024):
                chunk = tone[k:k + 1024]
                af = av.AudioFrame.from_ndarray(chunk[None], format="flt", layout="mono")
                af.sample_rate, af.pts = 16000, k
                c.mux(a.encode(af))
            c.mux(a.encode(None))
    return path


def make_footage(root: Path) -> dict:
    """Write the folder; returns what a scan should find."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "city").mkdir(exist_ok=True)
    # 24 fps, 3 s, wide, with sound; caption beside it
    wide = np.repeat(scene(0, 24, 48, 80), 3, axis=0)
    write(wide, root / "street.mp4", 24, audio=True)
    (root / "street.txt").write_text("a busy street at dusk\n")
    # 30 fps mkv, square, in a subfolder, caption from metadata.jsonl
    write(np.repeat(scene(1, 24, 64, 64), 4, axis=0)[:90], root / "city" / "square.mkv", 30)
    # 10 fps webm (VP9), tall
    write(scene(2, 25, 80, 48), root / "tall.webm", 10, codec="libvpx-vp9")
    # variable frame rate: frames at uneven times (1/90 s time base)
    frames = scene(3, 30, 64, 64)
    pts = np.cumsum([0] + [int(v) for v in np.random.default_rng(0).choice([6, 9, 15], 29)]).tolist()
    write(frames, root / "vfr.mp4", 10, pts=pts, time_base=Fraction(1, 90))
    # a scene cut in the middle: 3 s at 8 fps, the second half another place
    cut = np.concatenate([scene(4, 12, 64, 64), scene(5, 12, 64, 64, invert=True)])
    write(cut, root / "cut.mp4", 8)
    # a gif and two stills
    Video(scene(6, 21, 64, 64), 8.0).save(root / "loop.gif")
    Video(scene(7, 1, 64, 64), 8.0).save(root / "photo.png")
    from PIL import Image
    Image.fromarray(scene(8, 1, 48, 80)[0]).save(root / "wide photo.jpg", quality=90)
    (root / "metadata.jsonl").write_text(
        json.dumps({"file": "city/square.mkv", "caption": "a square in the city"}) + "\n"
        + json.dumps({"file": "photo.png", "caption": "a still photograph"}) + "\n")
    # broken files: a truncated mp4 and random bytes with a video suffix
    good = write(scene(9, 17, 64, 64), root / "whole.mp4", 8).read_bytes()
    (root / "whole.mp4").unlink()
    (root / "truncated.mp4").write_bytes(good[: len(good) // 3])
    (root / "noise.mov").write_bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    (root / "notes.md").write_text("not media: ignored")
    return {"readable": 8, "broken": {"truncated.mp4", "noise.mov"}, "cut_file": "cut.mp4", "cut_at": 12,
            "captioned": {"street.mp4", "city/square.mkv", "photo.png"}}
