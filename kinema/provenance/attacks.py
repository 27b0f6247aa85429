"""What a re-upload does to a video, as functions of uint8 (T, H, W, 3) frames: the attacks the
watermark is measured against (benchmarks/provenance.py) and tested against (tests/test_provenance.py)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import av
import numpy as np


def reencode(frames: np.ndarray, fps: float, crf: int = 28) -> np.ndarray:
    """The frames after H.264 (libx264, yuv420p) at `crf`, read back (sides cut to even)."""
    from ..video import Video
    with tempfile.TemporaryDirectory(prefix="kinema-attack-") as folder:
        path = Path(folder) / "attack.mp4"
        with av.open(str(path), "w") as c:
            s = c.add_stream("libx264", rate=round(fps))
            s.height, s.width = frames.shape[1] // 2 * 2, frames.shape[2] // 2 * 2
            s.pix_fmt, s.options = "yuv420p", {"crf": str(crf)}
            for f in frames[:, :s.height, :s.width]:
                for p in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                    c.mux(p)
            for p in s.encode():
                c.mux(p)
        return Video.read(path).frames


def scale(x: np.ndarray, k: float) -> np.ndarray:
    from ..video import Video
    return Video(x).resize(max(16, round(x.shape[1] * k / 2) * 2), max(16, round(x.shape[2] * k / 2) * 2),
                           "stretch").frames


def crop(x: np.ndarray, share: float = 0.1) -> np.ndarray:
    """`share` of each side cut away, half from each edge, not resized."""
    h, w = x.shape[1:3]
    dy, dx = round(h * share / 2), round(w * share / 2)
    return x[:, dy:h - dy, dx:w - dx]


def tone(x: np.ndarray, gain: float) -> np.ndarray:
    """Brightness: every value times `gain`, clipped."""
    return np.clip(x.astype(np.float32) * gain, 0, 255).astype(np.uint8)


def contrast(x: np.ndarray, k: float) -> np.ndarray:
    """Contrast about the clip's mean, times `k`, clipped."""
    m = x.mean()
    return np.clip((x.astype(np.float32) - m) * k + m, 0, 255).astype(np.uint8)


def attacks(fps: float) -> dict:
    """{name: frames -> frames} for a clip at `fps`; each is also measured followed by `reencode`."""
    from ..video import Video
    return {"none": lambda x: x, "downscale 0.5x": lambda x: scale(x, 0.5), "crop 10%": crop,
            "brightness +20%": lambda x: tone(x, 1.2), "brightness -20%": lambda x: tone(x, 0.8),
            "contrast +20%": lambda x: contrast(x, 1.2), "contrast -20%": lambda x: contrast(x, 0.8),
            "8 -> 12 fps": lambda x: Video(x, fps).resample(fps * 1.5).frames,
            "first second": lambda x: x[:round(fps)]}
