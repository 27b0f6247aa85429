"""Video: uint8 frames `(T, H, W, 3)` plus fps, and every way in and out of kinema.

Containers (mp4, mov, mkv, webm, avi, gif) go through PyAV; still images and folders of
numbered images through Pillow. Reading is safe with untrusted files: files are opened by
kinema and handed to FFmpeg as a byte stream (no URL protocols), only an allow-list of
demuxers is accepted (playlists such as m3u8 and ffconcat are refused), and frame and pixel
counts are capped. Writing is atomic (see `kinema.atomic`).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from .atomic import atomic_path
from .errors import InputError, VideoReadError, WriteError

# Limits. Sizes are per side; frame counts follow the causal autoencoder's 4k+1 rule.
MIN_SIDE, MAX_SIDE = 8, 4096
MAX_FRAMES = 4096  # default cap when reading
MAX_FRAME_PIXELS = 4096 * 4096  # one frame
MAX_TOTAL_PIXELS = 2**28  # all frames together (~800 MB of uint8 RGB)
FITS = ("crop", "pad", "stretch")

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
PLAYLIST_SUFFIXES = {".m3u", ".m3u8", ".ffconcat", ".concat", ".txt", ".pls", ".sdp", ".mpd"}
# FFmpeg demuxer names we accept (a container's format name may list several, comma-separated).
SAFE_DEMUXERS = {"mov", "mp4", "m4a", "3gp", "3g2", "mj2", "matroska", "webm", "avi", "gif",
                 "mpeg", "mpegts", "flv", "ogg", "h264", "hevc"}
# Output suffix -> (muxer, encoder, encoder options).
CONTAINER_WRITERS = {
    ".mp4": ("mp4", "libx264", {"crf": "16", "preset": "medium"}),
    ".mov": ("mov", "libx264", {"crf": "16", "preset": "medium"}),
    ".mkv": ("matroska", "libx264", {"crf": "16", "preset": "medium"}),
    ".webm": ("webm", "libvpx-vp9", {"crf": "20", "b": "0", "deadline": "good", "cpu-used": "4"}),
}
_SIZE_TAG = "kinema-size="  # records the true size when an odd-sized video was padded to even


# ---------------------------------------------------------------------------------- checks

def check_size(height: int, width: int, what: str = "size") -> tuple[int, int]:
    """Validate a requested frame size, returning it as ints."""
    if not all(isinstance(v, (int, np.integer)) for v in (height, width)):
        raise InputError(f"{what} must be whole pixels, got {height}x{width}")
    if not (MIN_SIDE <= height <= MAX_SIDE and MIN_SIDE <= width <= MAX_SIDE):
        raise InputError(f"{what} {height}x{width} is impossible: each side must be between "
                         f"{MIN_SIDE} and {MAX_SIDE} pixels")
    return int(height), int(width)


def check_frames(frames: int) -> int:
    """Frame counts are 4k+1 (frame 0 alone, then groups of 4); name the nearest valid ones."""
    if not isinstance(frames, (int, np.integer)) or frames < 1 or (frames - 1) % 4:
        n = int(frames) if isinstance(frames, (int, float, np.integer)) else 1
        lo = max(1, 4 * ((n - 1) // 4) + 1)
        hint = f"nearest valid: {lo} or {lo + 4}" if n > 1 else "the smallest is 1"
        raise InputError(f"frames must be of the form 4k+1 (1, 5, 9, 13, 17, ...), got {frames}; {hint}")
    if frames > MAX_FRAMES:
        raise InputError(f"frames={frames} is over the cap of {MAX_FRAMES}")
    return int(frames)


def check_fps(fps: float) -> float:
    if not (isinstance(fps, (int, float, np.floating, np.integer)) and 0 < fps <= 240):
        raise InputError(f"fps must be in (0, 240], got {fps}")
    return float(fps)


def check_fit(fit: str) -> str:
    if fit not in FITS:
        raise InputError(f"unknown fit mode '{fit}'; choose one of {', '.join(FITS)}")
    return fit


# ---------------------------------------------------------------------------------- Video

@dataclass
class Video:
    """A clip: `frames` is uint8 `(T, H, W, 3)`, `fps` its frame rate. A still image is T = 1."""

    frames: np.ndarray
    fps: float = 8.0

    def __post_init__(self):
        f = np.asarray(self.frames)
        if f.ndim == 3:
            f = f[None]
        if f.ndim != 4 or f.shape[-1] != 3:
            raise InputError(f"frames must have shape (T, H, W, 3), got {tuple(f.shape)}")
        if f.dtype != np.uint8:
            raise InputError(f"frames must be uint8, got {f.dtype}")
        if len(f) == 0:
            raise InputError("a video needs at least one frame")
        self.frames = np.ascontiguousarray(f)
        self.fps = check_fps(self.fps)

    num_frames = property(lambda self: self.frames.shape[0])
    height = property(lambda self: self.frames.shape[1])
    width = property(lambda self: self.frames.shape[2])
    duration = property(lambda self: self.num_frames / self.fps, doc="seconds")

    def __repr__(self):
        return f"Video({self.num_frames} frames, {self.height}x{self.width}, {self.fps:g} fps)"

    # -- in and out
    @classmethod
    def read(cls, path, *, max_frames: int = MAX_FRAMES, max_pixels: int = MAX_TOTAL_PIXELS) -> "Video":
        return read_video(path, max_frames=max_frames, max_pixels=max_pixels)

    def save(self, path) -> Path:
        return write_video(self, path)

    # -- tensors: (C, T, H, W) float in [-1, 1]
    def to_tensor(self) -> torch.Tensor:
        return torch.from_numpy(self.frames).permute(3, 0, 1, 2).float().div_(127.5).sub_(1.0)

    @classmethod
    def from_tensor(cls, x: torch.Tensor, fps: float = 8.0) -> "Video":
        if x.ndim != 4 or x.shape[0] != 3:
            raise InputError(f"expected a (3, T, H, W) tensor, got {tuple(x.shape)}")
        u8 = x.detach().float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
        return cls(u8.permute(1, 2, 3, 0).cpu().numpy(), fps)

    # -- transforms
    def resample(self, fps: float) -> "Video":
        """Change the frame rate keeping the duration: nearest earlier source frame for each output time."""
        fps = check_fps(fps)
        n = max(1, round(self.num_frames * fps / self.fps))
        idx = np.minimum(np.floor(np.arange(n) * self.fps / fps + 1e-6).astype(int), self.num_frames - 1)
        return Video(self.frames[idx], fps)

    def resize(self, height: int, width: int, fit: str = "crop") -> "Video":
        """Resize to `height` x `width`. `crop` scales to cover then centre-crops, `pad` scales to
        fit then pads with black, `stretch` ignores the aspect ratio."""
        height, width = check_size(height, width)
        fit = check_fit(fit)
        H, W = self.height, self.width
        if fit == "stretch":
            sh, sw = height, width
        else:
            s = (max if fit == "crop" else min)(height / H, width / W)
            sh, sw = max(1, round(H * s)), max(1, round(W * s))
            if fit == "crop":
                sh, sw = max(sh, height), max(sw, width)
            else:
                sh, sw = min(sh, height), min(sw, width)
        out = np.zeros((self.num_frames, height, width, 3), np.uint8)
        top, left = (height - sh) // 2, (width - sw) // 2  # negative for crop
        for i in range(0, self.num_frames, 64):  # bounded memory for long clips
            x = torch.from_numpy(self.frames[i:i + 64]).permute(0, 3, 1, 2).float()
            if (sh, sw) != (H, W):
                x = F.interpolate(x, size=(sh, sw), mode="bilinear", antialias=True, align_corners=False)
            x = x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
            if fit == "crop":
                out[i:i + 64] = x[:, -top:-top + height, -left:-left + width]
            else:
                out[i:i + 64, top:top + sh, left:left + sw] = x
        return Video(out, self.fps)


# ---------------------------------------------------------------------------------- reading

def read_video(path, *, max_frames: int = MAX_FRAMES, max_pixels: int = MAX_TOTAL_PIXELS) -> Video:
    """Read a video file, an animated gif, a still image or a folder of numbered images."""
    p = Path(path)
    if not p.exists():
        raise VideoReadError(f"{p}: no such file or folder")
    if p.is_dir():
        return _read_image_folder(p, max_frames, max_pixels)
    suffix = p.suffix.lower()
    if suffix in PLAYLIST_SUFFIXES:
        raise VideoReadError(f"{p}: playlists and concat lists are refused; pass a video file")
    if suffix in IMAGE_SUFFIXES:
        return Video(_read_image(p), 8.0)
    return _read_container(p, max_frames, max_pixels)


def _read_image(p: Path) -> np.ndarray:
    try:
        with Image.open(p) as im:
            if im.width * im.height > MAX_FRAME_PIXELS:
                raise VideoReadError(f"{p}: {im.width}x{im.height} image is over the cap of {MAX_FRAME_PIXELS} pixels")
            return np.array(im.convert("RGB"))  # a writable copy
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, SyntaxError) as e:
        raise VideoReadError(f"{p}: not a readable image ({e})") from e


def _read_image_folder(p: Path, max_frames: int, max_pixels: int) -> Video:
    def key(q: Path):
        return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", q.name)]
    files = sorted((q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES), key=key)
    if not files:
        raise VideoReadError(f"{p}: folder holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    if len(files) > max_frames:
        raise VideoReadError(f"{p}: {len(files)} images is over the cap of {max_frames} frames")
    frames = [_read_image(q) for q in files]
    if len({f.shape for f in frames}) > 1:
        raise VideoReadError(f"{p}: images differ in size; a video needs one size")
    if len(frames) * frames[0].shape[0] * frames[0].shape[1] > max_pixels:
        raise VideoReadError(f"{p}: over the cap of {max_pixels} pixels in all")
    return Video(np.stack(frames), _folder_fps(p))


def _folder_fps(p: Path) -> float:
    meta = p / "video.json"
    try:
        return check_fps(json.loads(meta.read_text())["fps"]) if meta.is_file() else 8.0
    except (ValueError, KeyError, TypeError, InputError):
        return 8.0


def _read_container(p: Path, max_frames: int, max_pixels: int) -> Video:
    try:
        fh = open(p, "rb")
    except OSError as e:
        raise VideoReadError(f"{p}: cannot open ({e.strerror})") from e
    with fh:
        if os.fstat(fh.fileno()).st_size == 0:
            raise VideoReadError(f"{p}: the file is empty (zero bytes)")
        try:
            # FFmpeg reads our file object; nested opens (playlist segments) match no protocol.
            container = av.open(fh, mode="r", metadata_errors="ignore", options={"protocol_whitelist": "none"})
        except (av.FFmpegError, ValueError, UnicodeDecodeError, OSError) as e:
            raise VideoReadError(f"{p}: not a video kinema can read (corrupt or unknown format: {e})") from e
        with container:
            fmt = container.format.name
            if not set(fmt.split(",")) & SAFE_DEMUXERS:
                raise VideoReadError(f"{p}: container format '{fmt}' is refused (playlists and "
                                     f"network formats are not read)")
            if not container.streams.video:
                raise VideoReadError(f"{p}: holds no video stream (zero frames)")
            stream = container.streams.video[0]
            h, w = stream.codec_context.height, stream.codec_context.width
            if h * w > MAX_FRAME_PIXELS:
                raise VideoReadError(f"{p}: {w}x{h} frames are over the cap of {MAX_FRAME_PIXELS} pixels")
            frames = []
            try:
                for frame in container.decode(stream):
                    if len(frames) >= max_frames:
                        raise VideoReadError(f"{p}: more than {max_frames} frames (the cap); trim the video")
                    if (len(frames) + 1) * frame.height * frame.width > max_pixels:
                        raise VideoReadError(f"{p}: over the cap of {max_pixels} pixels in all; trim or downscale it")
                    frames.append(frame.to_ndarray(format="rgb24"))
            except (av.FFmpegError, ValueError) as e:
                raise VideoReadError(f"{p}: corrupt or truncated video ({e})") from e
            declared = stream.frames
            fps = _stream_fps(stream, len(frames))
            tag = container.metadata.get("comment", "")
    if not frames:
        raise VideoReadError(f"{p}: the video holds zero frames")
    if declared and len(frames) < declared:
        raise VideoReadError(f"{p}: truncated video: decoded {len(frames)} of {declared} frames")
    arr = np.stack(frames)
    if tag.startswith(_SIZE_TAG):  # undo the even-size padding of an odd-sized video we wrote
        th, tw = (int(v) for v in tag[len(_SIZE_TAG):].split("x"))
        if 0 <= arr.shape[1] - th <= 1 and 0 <= arr.shape[2] - tw <= 1:
            arr = arr[:, :th, :tw]
    return Video(arr, fps)


def _stream_fps(stream, n: int) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and 0 < float(rate) <= 240:
            return round(float(rate), 3)
    if stream.duration and stream.time_base and n > 1:
        return round(n / float(stream.duration * stream.time_base), 3)
    return 8.0


# ---------------------------------------------------------------------------------- writing

def write_video(video: Video, path) -> Path:
    """Write by suffix: .mp4/.mov/.mkv (H.264, yuv420p), .webm (VP9), .gif, .png (one frame,
    or a folder of frames if the video has several), or no suffix: a folder of PNG frames."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in CONTAINER_WRITERS:
        with atomic_path(p) as tmp:
            _write_container(video, tmp, *CONTAINER_WRITERS[suffix])
    elif suffix == ".gif":
        with atomic_path(p) as tmp:
            _write_gif(video, tmp)
    elif suffix == ".png" and video.num_frames == 1:
        with atomic_path(p) as tmp:
            Image.fromarray(video.frames[0]).save(tmp, format="PNG")
    elif suffix in ("", ".png"):
        with atomic_path(p, folder=True) as tmp:
            for i, f in enumerate(video.frames):
                Image.fromarray(f).save(tmp / f"{i:06d}.png", compress_level=1)
            (tmp / "video.json").write_text(json.dumps({"fps": video.fps, "frames": video.num_frames}))
    else:
        raise InputError(f"unknown output format '{suffix}'; use .mp4, .mov, .mkv, .webm, .gif, "
                         f".png or a folder name")
    return p


def _write_container(video: Video, tmp: Path, muxer: str, codec: str, options: dict) -> None:
    frames = video.frames
    H, W = video.height, video.width
    if H % 2 or W % 2:  # yuv420p needs even sizes: pad by replicating the edge, note the true size
        frames = np.pad(frames, ((0, 0), (0, H % 2), (0, W % 2), (0, 0)), mode="edge")
    opts = {"movflags": "+faststart"} if muxer in ("mp4", "mov") else {}
    try:
        with av.open(str(tmp), mode="w", format=muxer, options=opts) as container:
            if (H % 2 or W % 2) and muxer != "webm":
                container.metadata["comment"] = f"{_SIZE_TAG}{H}x{W}"
            stream = container.add_stream(codec, rate=Fraction(video.fps).limit_denominator(1001))
            stream.height, stream.width = frames.shape[1], frames.shape[2]
            stream.pix_fmt = "yuv420p"
            stream.options = options
            for f in frames:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
            container.mux(stream.encode(None))
    except av.FFmpegError as e:
        raise WriteError(f"cannot encode {tmp.name.split('.part')[0][1:]}: {e}") from e


def _write_gif(video: Video, tmp: Path) -> None:
    images = [Image.fromarray(f) for f in video.frames]
    images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                   duration=max(20, round(1000 / video.fps)), loop=0, disposal=1)
