"""Video: uint8 frames `(T, H, W, 3)` plus fps, and every way in and out of kinema.

Containers (mp4, mov, mkv, webm, avi, gif) go through PyAV; still images and folders of
numbered images through Pillow. Reading is safe with untrusted files:
- only regular files are opened (after links): a FIFO would block for ever, a device never ends;
- files are opened by kinema and handed to FFmpeg as a byte stream (no URL protocols), and only
  an allow-list of demuxers is accepted (playlists such as m3u8 and ffconcat are refused);
- memory and time are bounded: a frame's declared size is checked before decoding, and the frame
  and pixel caps are checked as frames come, before each is converted. A caller that will fit
  the clip to a size and frame rate passes them to `read_video`, which resamples and resizes
  each frame as it is decoded, so memory follows the output, not the input;
- whatever a decoder raises on a crafted file becomes a `VideoReadError` naming the file.
Writing is atomic (see `kinema.atomic`); `check_output` checks a destination before any work.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import stat
import struct
import warnings
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from .atomic import atomic_path
from .errors import InputError, KinemaError, VideoReadError, WriteError

# Limits. Sizes are per side; frame counts follow the causal autoencoder's 4k+1 rule.
MIN_SIDE, MAX_SIDE = 8, 4096
MAX_FRAMES = 4096  # default cap when reading
MAX_FRAME_PIXELS = 4096 * 4096  # one frame
MAX_TOTAL_PIXELS = 2**28  # all frames together (~800 MB of uint8 RGB)
# source pixels one read may decode, which bounds its time (binds when fitting): ~70 s of 1080p30,
# or 256 frames of 4096x4096; about a minute of decoding on 2 cores
MAX_DECODED_PIXELS = 2**32
# Frame rates every writer stores faithfully: mp4/mov/mkv/webm keep a rational rate (1/10 at the
# bottom), a folder keeps it in video.json; a GIF keeps delays in whole 1/100 s (at most 655.35 s)
# and players show delays under 2/100 s as 10/100 s, so a GIF holds at most 50 fps.
MIN_FPS, MAX_FPS = 0.1, 240.0
GIF_MAX_FPS = 50.0
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
_SIZE_TAG_RE = re.compile(r"kinema-size=([1-9][0-9]{0,3})x([1-9][0-9]{0,3})")
_FRAME_FILE = re.compile(r"[0-9]{6}\.png")  # what a frame folder we wrote holds, with video.json
# What a decoder may raise on a crafted file; each means "this file cannot be read".
_BAD_FILE = (av.FFmpegError, EOFError, MemoryError, OverflowError, ZeroDivisionError, struct.error,
             ValueError, OSError, Image.DecompressionBombError, SyntaxError, IndexError, KeyError,
             TypeError, NotImplementedError, AttributeError, RecursionError)


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
    """A frame rate every writer stores faithfully: MIN_FPS to MAX_FPS."""
    ok = isinstance(fps, (int, float, np.floating, np.integer)) and not isinstance(fps, bool)
    if not (ok and math.isfinite(fps) and MIN_FPS <= fps <= MAX_FPS):
        raise InputError(f"fps must be between {MIN_FPS:g} and {MAX_FPS:g}, got {fps}")
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
        if 0 in f.shape[1:3]:
            raise InputError(f"frames must be at least 1x1 pixels, got {f.shape[1]}x{f.shape[2]}")
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
    def read(cls, path, *, fps: float | None = None, height: int | None = None, width: int | None = None,
             fit: str = "crop", max_frames: int = MAX_FRAMES, max_pixels: int = MAX_TOTAL_PIXELS) -> "Video":
        return read_video(path, fps=fps, height=height, width=width, fit=fit, max_frames=max_frames,
                          max_pixels=max_pixels)

    def save(self, path) -> Path:
        return write_video(self, path)

    # -- tensors: (C, T, H, W) float in [-1, 1]
    def to_tensor(self) -> torch.Tensor:
        """(3, T, H, W) float in [-1, 1], contiguous: convolutions under bf16 autocast round by memory
        layout, so a clip must reach the autoencoder the same way alone and in a stacked batch."""
        return torch.from_numpy(self.frames).permute(3, 0, 1, 2).contiguous().float().div_(127.5).sub_(1.0)

    @classmethod
    def from_tensor(cls, x: torch.Tensor, fps: float = 8.0) -> "Video":
        if x.ndim != 4 or x.shape[0] != 3:
            raise InputError(f"expected a (3, T, H, W) tensor, got {tuple(x.shape)}")
        u8 = x.detach().float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
        return cls(u8.permute(1, 2, 3, 0).cpu().numpy(), fps)

    # -- transforms (read_video does the same frame by frame: _resampled_count, _source_index, _resize_frames)
    def resample(self, fps: float) -> "Video":
        """Change the frame rate keeping the duration: nearest earlier source frame for each output time."""
        fps = check_fps(fps)
        n = _resampled_count(self.num_frames, self.fps, fps)
        idx = np.minimum(_source_index(np.arange(n), self.fps, fps), self.num_frames - 1)
        return Video(self.frames[idx], fps)

    def resize(self, height: int, width: int, fit: str = "crop") -> "Video":
        """Resize to `height` x `width`. `crop` scales to cover and keeps the centre (the centre of the
        source with the output's aspect ratio, scaled), `pad` scales to fit then pads with black,
        `stretch` ignores the aspect ratio."""
        height, width = check_size(height, width)
        fit = check_fit(fit)
        out = np.empty((self.num_frames, height, width, 3), np.uint8)
        for i in range(0, self.num_frames, 64):  # bounded memory for long clips
            out[i:i + 64] = _resize_frames(self.frames[i:i + 64], height, width, fit)
        return Video(out, self.fps)


def _resampled_count(n: int, src_fps: float, fps: float) -> int:
    """Frames at `fps` that last as long as `n` frames at `src_fps` (at least one)."""
    return max(1, round(n * fps / src_fps))


def _source_index(k, src_fps: float, fps: float) -> np.ndarray:
    """The source frame shown at output frame `k` (an int or an array): the nearest earlier one."""
    return np.floor(np.asarray(k) * src_fps / fps + 1e-6).astype(np.int64)


def _resize_frames(x: np.ndarray, height: int, width: int, fit: str) -> np.ndarray:
    """uint8 (n, H, W, 3) -> uint8 (n, height, width, 3), as `Video.resize` describes. `crop` takes
    the centre of the source with the output's aspect ratio first, so nothing larger than the
    source or the output is ever made (scaling a 1x4096 image to cover 64x64 would make 64x262144).
    A frame's result does not depend on the others in the batch: frame by frame gives the same."""
    H, W = x.shape[1:3]
    if fit == "crop":
        s = max(height / H, width / W)
        ch, cw = min(H, max(1, round(height / s))), min(W, max(1, round(width / s)))
        x = x[:, (H - ch) // 2:(H - ch) // 2 + ch, (W - cw) // 2:(W - cw) // 2 + cw]
        H, W = ch, cw
    sh, sw = height, width
    if fit == "pad":
        s = min(height / H, width / W)
        sh, sw = min(height, max(1, round(H * s))), min(width, max(1, round(W * s)))
    y = torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float()
    if (sh, sw) != (H, W):
        y = F.interpolate(y, size=(sh, sw), mode="bilinear", antialias=True, align_corners=False)
    y = y.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    if fit != "pad":
        return y
    out = np.zeros((len(x), height, width, 3), np.uint8)
    top, left = (height - sh) // 2, (width - sw) // 2
    out[:, top:top + sh, left:left + sw] = y
    return out


# ---------------------------------------------------------------------------------- reading

def read_video(path, *, fps: float | None = None, height: int | None = None, width: int | None = None,
               fit: str = "crop", max_frames: int = MAX_FRAMES, max_pixels: int = MAX_TOTAL_PIXELS,
               head: bool = False, max_decoded: int | None = None) -> Video:
    """Read a video file, an animated gif, a still image or a folder of numbered images.

    With `fps` and/or `height` and `width`, each frame is resampled (as `Video.resample`) and resized
    (as `Video.resize` with `fit`) as it is decoded: the result equals reading, then
    `.resample(fps).resize(height, width, fit)`, but memory follows the output, not the input, and
    the caps (`max_frames`, `max_pixels`) apply to the output. With `head`, a video file over the
    caps (or over the decoding cap, MAX_DECODED_PIXELS) is read up to them, its first frames,
    instead of refused: what training on long footage wants. `max_decoded` caps the source pixels
    decoded (default MAX_DECODED_PIXELS; decoding time follows it: a server's uploads take a lower one)."""
    fps = None if fps is None else check_fps(fps)
    if (height is None) != (width is None):
        raise InputError(f"give both height and width to resize while reading, or neither; got {height}x{width}")
    size = None if height is None else check_size(height, width)
    fit = check_fit(fit)
    p = Path(path)
    mode = _stat(p).st_mode

    def output(src_fps: float) -> _Output:
        return _Output(p, src_fps, fps, size, fit, max_frames, max_pixels, head, max_decoded)

    try:
        if stat.S_ISDIR(mode):
            return _read_image_folder(p, output)
        suffix = p.suffix.lower()
        if suffix in PLAYLIST_SUFFIXES:
            raise VideoReadError(f"{p}: playlists and concat lists are refused; pass a video file")
        if suffix in IMAGE_SUFFIXES:
            return _read_images([p], output(8.0))
        return _read_container(p, output)
    except VideoReadError:
        raise
    except InputError as e:  # our checks were passed above: this is something the file holds
        raise VideoReadError(f"{p}: {e}") from e
    except _BAD_FILE as e:
        raise VideoReadError(f"{p}: not a video kinema can read ({type(e).__name__}: {e})") from e


def probe(path) -> tuple[int, int]:
    """(height, width) of a video or image file from its header, without decoding pixels: what a
    folder scan needs to put a file in an aspect bucket before reading it at the bucket's size.
    Opens the file as `read_video` does (regular files, allowed demuxers only)."""
    p = Path(path)
    try:
        if p.suffix.lower() in IMAGE_SUFFIXES:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with _open(p) as fh, Image.open(fh) as im:
                    w, h = im.size
                    with contextlib.suppress(*_BAD_FILE):  # rotated by EXIF: height and width swap
                        if im.getexif().get(0x0112, 1) in (5, 6, 7, 8):
                            h, w = w, h
        else:
            with _open(p) as fh, av.open(fh, mode="r", metadata_errors="ignore",
                                         options={"protocol_whitelist": "none"}) as container:
                if not set(container.format.name.split(",")) & SAFE_DEMUXERS:
                    raise VideoReadError(f"{p}: container format '{container.format.name}' is refused")
                if not container.streams.video or container.streams.video[0].codec_context is None:
                    raise VideoReadError(f"{p}: holds no video stream kinema can decode")
                cc = container.streams.video[0].codec_context
                h, w = _untagged_size(cc.height, cc.width, _size_tag(container.metadata.get("comment", "")))
    except KinemaError:
        raise
    except (UnidentifiedImageError, *_BAD_FILE) as e:
        raise VideoReadError(f"{p}: not a video kinema can read ({type(e).__name__}: {e})") from e
    if not (h > 0 and w > 0):
        raise VideoReadError(f"{p}: declares no frame size")
    return int(h), int(w)


def _stat(p: Path) -> os.stat_result:
    """The file or folder at `p` (after links); refuse anything else before opening it."""
    try:
        st = os.stat(p)
    except FileNotFoundError as e:
        raise VideoReadError(f"{p}: no such file or folder") from e
    except (OSError, ValueError) as e:
        raise VideoReadError(f"{p}: cannot open ({getattr(e, 'strerror', None) or e})") from e
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        raise VideoReadError(f"{p}: {_kind(st.st_mode)}, not a regular file; pass a video or image file")
    return st


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "a special file"


def _open(p: Path):
    """Open a regular file for reading. The stat refuses a FIFO or device without opening it;
    O_NONBLOCK and the fstat refuse one swapped in since, without blocking."""
    if not stat.S_ISREG(_stat(p).st_mode):
        raise VideoReadError(f"{p}: a folder, not a regular file")
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise VideoReadError(f"{p}: cannot open ({e.strerror})") from e
    fh = os.fdopen(fd, "rb")
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        fh.close()
        raise VideoReadError(f"{p}: {_kind(st.st_mode)}, not a regular file; pass a video or image file")
    if st.st_size == 0:  # also what /proc and /sys files say of themselves: no media there
        fh.close()
        raise VideoReadError(f"{p}: the file is empty (zero bytes)")
    return fh


class _Full(Exception):
    """A `head` read reached a cap: the frames so far are the result."""


class _Output:
    """A read's result, built as the source is decoded: resampled (nearest earlier frame, as
    `Video.resample`) and resized (as `Video.resize`) frame by frame, so memory follows the
    output. An output frame is made only once it is certain to be kept, so a source frame that
    resampling drops is never converted; the caps apply to the output."""

    def __init__(self, where: Path, src_fps: float, fps: float | None, size, fit: str, max_frames: int,
                 max_pixels: int, head: bool = False, max_decoded: int | None = None):
        self.head = head  # at a cap: stop (_Full) and keep the frames so far, instead of refusing
        self.where, self.src, self.fps, self.size, self.fit = where, src_fps, fps or src_fps, size, fit
        self.max_frames, self.max_pixels = max_frames, max_pixels
        self.frames: list[np.ndarray] = []  # a repeated frame is one array, listed again
        self.least = 0  # the output has at least this many frames
        self.area = size[0] * size[1] if size else 0  # pixels in an output frame, once known
        self.raw: dict = {}  # decoded source frames an output frame still needs (at most one)
        self.made = (-1, None)  # the last converted source frame: (index, frame)
        self.decoded = 0  # source pixels decoded so far (spend)
        self.max_decoded = max_decoded or MAX_DECODED_PIXELS

    def count(self, n_src: int) -> int:
        return _resampled_count(n_src, self.src, self.fps)

    def check(self, n: int, area: int = 0) -> None:
        """Refuse an output of `n` frames (of `area` pixels each, until the output's is known)."""
        if self.head and (n > self.max_frames or n * (self.area or area) > self.max_pixels):
            raise _Full
        if n > self.max_frames:
            raise VideoReadError(f"{self.where}: more than {self.max_frames} frames (the cap); trim the video")
        if n * (self.area or area) > self.max_pixels:
            raise VideoReadError(f"{self.where}: over the cap of {self.max_pixels} pixels in all; trim or "
                                 f"downscale it")

    def spend(self, pixels: int) -> None:
        """Count source pixels about to be decoded (a dropped frame costs decoding time too)."""
        self.decoded += pixels
        if self.decoded > self.max_decoded and self.head:
            raise _Full
        if self.decoded > self.max_decoded:
            raise VideoReadError(f"{self.where}: decoding it takes over {self.max_decoded:,} pixels (the cap; "
                                 f"{MAX_DECODED_PIXELS:,} is about a minute of decoding); trim or downscale it")

    def admit(self, h: int, w: int) -> None:
        """Called with a source frame's size before it is converted."""
        if h * w > MAX_FRAME_PIXELS:
            raise VideoReadError(f"{self.where}: {w}x{h} frames are over the cap of {MAX_FRAME_PIXELS} pixels")
        self.area = self.area or h * w  # without resizing, every frame must have the first one's size
        self.check(self.least)

    def push(self, i: int, frame, convert) -> None:
        """Source frame `i`, decoded or not; `convert(frame)` makes it uint8 (H, W, 3)."""
        self.raw[i] = frame
        self.least = max(self.least, self.count(i + 1))
        self.check(self.least)
        while len(self.frames) < self.count(i + 1):  # these output frames are certain now
            j = min(int(_source_index(len(self.frames), self.src, self.fps)), i)
            if self.made[0] != j:
                rgb = convert(self.raw.get(j, frame))
                if self.size:
                    rgb = _resize_frames(rgb[None], *self.size, self.fit)[0]
                elif self.frames and rgb.shape != self.frames[0].shape:
                    raise VideoReadError(f"{self.where}: frames differ in size; a video needs one size")
                self.made = (j, rgb)
            self.frames.append(self.made[1])
        nxt = int(_source_index(len(self.frames), self.src, self.fps))
        self.raw = {nxt: self.raw[nxt]} if nxt in self.raw else {}

    def video(self) -> Video:
        if not self.frames:
            raise VideoReadError(f"{self.where}: holds zero frames")
        return Video(np.stack(self.frames), self.fps)


def _read_images(files: list[Path], out: _Output) -> Video:
    """Still images, one frame each: the output's frame count is known before any is opened,
    and each image's size is checked from its header before it is decoded."""
    out.head = False  # stills and frame folders are read whole or refused
    out.least = out.count(len(files))
    out.check(out.least)
    def admit(h: int, w: int) -> None:
        out.spend(h * w)
        out.admit(h, w)

    for i, q in enumerate(files):
        out.push(i, q, lambda q: _read_image(q, admit))
    return out.video()


def _read_image(p: Path, admit) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "corrupt EXIF", "decompression bomb": the file is read or refused
            with _open(p) as fh, Image.open(fh) as im:
                admit(im.height, im.width)
                return _image_rgb(im)
    except KinemaError:
        raise
    except (UnidentifiedImageError, *_BAD_FILE) as e:
        raise VideoReadError(f"{p}: not a readable image ({e})") from e


def _image_rgb(im: Image.Image) -> np.ndarray:
    """uint8 RGB by the image's real range (Pillow's convert("RGB") clips 16- and 32-bit images to
    white and turns floats in [0, 1] black), upright by its EXIF orientation."""
    with contextlib.suppress(*_BAD_FILE):  # a broken EXIF block only loses the orientation
        im = ImageOps.exif_transpose(im)
    if im.mode.startswith("I;16"):
        g = np.asarray(im, np.float32) / 257
    elif im.mode == "I":  # 32-bit integers: 8-bit or 16-bit data as it usually is, else its own range
        a = np.asarray(im, np.float64)
        lo, hi = float(a.min()), float(a.max())
        g = a if lo >= 0 and hi <= 255 else a / 257 if lo >= 0 and hi <= 65535 else _stretch(a, lo, hi)
    elif im.mode == "F":  # [0, 1] as most tools write it, else the observed range; NaN and inf are black
        a = np.asarray(im, np.float64)
        finite = np.isfinite(a)
        lo, hi = (float(a[finite].min()), float(a[finite].max())) if finite.any() else (0.0, 0.0)
        g = a * 255 if 0 <= lo and hi <= 1 else _stretch(a, lo, hi)
        g[~finite] = 0
    else:
        return np.array(im.convert("RGB"))  # palette, LA, CMYK, 1, ...: Pillow knows their colours
    return np.repeat(np.clip(np.round(g), 0, 255).astype(np.uint8)[..., None], 3, axis=-1)


def _stretch(a: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """lo..hi to 0..255 (a flat image is black)."""
    return (a - lo) * (255 / (hi - lo)) if hi > lo else np.zeros_like(a)


def _read_image_folder(p: Path, output) -> Video:
    def key(q: Path):
        return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", q.name)]
    files = sorted((q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES), key=key)
    if not files:
        raise VideoReadError(f"{p}: folder holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return _read_images(files, output(_folder_fps(p)))


def _folder_fps(p: Path) -> float:
    """The rate in the folder's video.json (read capped, regular files only), clamped; else 8."""
    meta = p / "video.json"
    try:
        with _open(meta) as fh:
            fps = _clamp_fps(json.loads(fh.read(65536))["fps"])
    except (KinemaError, ValueError, KeyError, TypeError, RecursionError):
        return 8.0
    return fps or 8.0


def _clamp_fps(value) -> float | None:
    """A positive finite rate brought into [MIN_FPS, MAX_FPS] (a valid file with an odd rate still
    reads), or None for anything else."""
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return round(min(max(v, MIN_FPS), MAX_FPS), 3) if math.isfinite(v) and v > 0 else None


def _read_container(p: Path, output) -> Video:
    with _open(p) as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            raise VideoReadError(f"{p}: the file is empty (zero bytes)")
        try:
            # FFmpeg reads our file object; nested opens (playlist segments) match no protocol.
            container = av.open(fh, mode="r", metadata_errors="ignore", options={"protocol_whitelist": "none"})
        except _BAD_FILE as e:
            raise VideoReadError(f"{p}: not a video kinema can read (corrupt or unknown format: {e})") from e
        with container:
            fmt = container.format.name
            if not set(fmt.split(",")) & SAFE_DEMUXERS:
                raise VideoReadError(f"{p}: container format '{fmt}' is refused (playlists and "
                                     f"network formats are not read)")
            if not container.streams.video:
                raise VideoReadError(f"{p}: holds no video stream (zero frames)")
            stream = container.streams.video[0]
            if stream.codec_context is None:
                raise VideoReadError(f"{p}: its video stream names no codec kinema can decode")
            h, w = stream.codec_context.height, stream.codec_context.width
            if h * w > MAX_FRAME_PIXELS:
                raise VideoReadError(f"{p}: {w}x{h} frames are over the cap of {MAX_FRAME_PIXELS} pixels")
            out = output(_stream_fps(stream, gif="gif" in fmt.split(",")))
            declared = max(0, stream.frames or 0)
            if declared and not out.head:  # a file that says it is too long is refused before decoding
                out.check(out.count(declared), h * w)
            tag = _size_tag(container.metadata.get("comment", ""))

            def convert(frame) -> np.ndarray:
                th, tw = _untagged_size(frame.height, frame.width, tag)
                out.admit(th, tw)
                return _frame_rgb(frame)[:th, :tw]

            n, full = 0, False
            try:
                for n, frame in enumerate(container.decode(stream), 1):
                    out.spend(frame.height * frame.width)
                    out.push(n - 1, frame, convert)
            except _Full:  # a head read at a cap: keep what came
                full = True
            except KinemaError:
                raise
            except _BAD_FILE as e:
                raise VideoReadError(f"{p}: corrupt or truncated video ({e})") from e
    if n == 0:
        raise VideoReadError(f"{p}: the video holds zero frames")
    if declared and n < declared and not full:
        raise VideoReadError(f"{p}: truncated video: decoded {n} of {declared} frames")
    return out.video()


def _frame_rgb(frame: av.VideoFrame) -> np.ndarray:
    """One decoded frame as uint8 (H, W, 3): the one costly step per frame, so only kept frames get it."""
    return frame.to_ndarray(format="rgb24")


def _size_tag(comment) -> tuple[int, int] | None:
    """The true size recorded by `_write_container`; a malformed tag (the file's word) is ignored."""
    m = _SIZE_TAG_RE.fullmatch(comment) if isinstance(comment, str) else None
    return (int(m[1]), int(m[2])) if m else None


def _untagged_size(h: int, w: int, tag) -> tuple[int, int]:
    """Undo the even-size padding of an odd-sized video we wrote (one row or column at most)."""
    if tag and 0 <= h - tag[0] <= 1 and 0 <= w - tag[1] <= 1:
        return tag
    return h, w


def _stream_fps(stream, gif: bool = False) -> float:
    """The stream's frame rate, clamped into [MIN_FPS, MAX_FPS]. A GIF's rate is its frames over
    its duration (FFmpeg reports its first delay as the average rate)."""
    def measured():
        return stream.frames / (stream.duration * stream.time_base)
    rates = []
    for get in [measured] * gif + [lambda: stream.average_rate, lambda: stream.guessed_rate,
                                   lambda: stream.base_rate, measured]:
        try:
            rates.append(float(get()))
        except (TypeError, ValueError, ZeroDivisionError, OverflowError):
            pass
    rates = [r for r in rates if math.isfinite(r) and r > 0]
    inside = [r for r in rates if MIN_FPS <= r <= MAX_FPS]
    return _clamp_fps((inside or rates or [8.0])[0])


# ---------------------------------------------------------------------------------- writing

def _formats_error(suffix: str) -> InputError:
    return InputError(f"unknown output format '{suffix}'; use .mp4, .mov, .mkv, .webm, .gif, .png or a folder name")


def check_output(path, *, frames: int | None = None, fps: float | None = None) -> Path:
    """Check before any work that `path` can take a video: a known format (by suffix; with `fps`,
    one that stores it), a writable folder, and nothing there that is not ours to replace: a
    device, FIFO or folder where a file goes, or a folder other than a frame folder kinema wrote.
    A .png of several `frames` (or an existing .png folder when `frames` is not given) is a frame
    folder, like a path without a suffix. Returns the path."""
    p = Path(path)
    suffix = p.suffix.lower()
    if p.name in ("", ".", ".."):
        raise InputError(f"name a file or folder to write, got {str(path)!r}")
    if str(path) == "-":
        raise InputError("kinema writes videos to files, not to standard output: give a file name such as out.mp4")
    if suffix not in CONTAINER_WRITERS and suffix not in ("", ".gif", ".png"):
        raise _formats_error(suffix)
    if fps is not None:
        fps = check_fps(fps)
        if suffix == ".gif" and fps > GIF_MAX_FPS:
            raise InputError(f"a GIF holds at most {GIF_MAX_FPS:g} fps (its frame delays are whole hundredths "
                             f"of a second), got {fps:g}; write .mp4 or .webm, or lower the fps")
    parent = p.parent
    if not parent.is_dir():
        raise WriteError(f"cannot write {p}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise WriteError(f"cannot write {p}: folder {parent} is not writable")
    try:
        st = os.stat(p)
    except FileNotFoundError:
        return p
    except ValueError as e:  # a NUL byte in the name
        raise InputError(f"cannot write {str(path)!r}: {e}") from e
    except OSError as e:
        raise WriteError(f"cannot write {p}: {e.strerror or e}") from e
    folder = suffix == "" or (suffix == ".png" and (frames > 1 if frames is not None else stat.S_ISDIR(st.st_mode)))
    if folder and not stat.S_ISDIR(st.st_mode):
        what = "a file" if stat.S_ISREG(st.st_mode) else _kind(st.st_mode)
        raise WriteError(f"cannot write a frame folder at {p}: it is {what}")
    if folder and not _is_frame_folder(p):
        raise WriteError(f"cannot write {p}: it is a folder that holds other files; kinema only replaces "
                         f"frame folders it wrote (NNNNNN.png and video.json)")
    if not folder and not stat.S_ISREG(st.st_mode):
        raise WriteError(f"cannot write {p}: it is {_kind(st.st_mode)}, not a regular file")
    return p


def _is_frame_folder(p: Path) -> bool:
    try:
        return all((_FRAME_FILE.fullmatch(q.name) or q.name == "video.json") and q.is_file() for q in p.iterdir())
    except OSError as e:
        raise WriteError(f"cannot write {p}: {e.strerror or e}") from e


def write_video(video: Video, path) -> Path:
    """Write by suffix: .mp4/.mov/.mkv (H.264, yuv420p), .webm (VP9), .gif, .png (one frame,
    or a folder of frames if the video has several), or no suffix: a folder of PNG frames.
    An existing frame folder is replaced whole; anything not ours is refused (`check_output`)."""
    p = check_output(path, frames=video.num_frames, fps=video.fps)
    suffix = p.suffix.lower()
    if suffix in CONTAINER_WRITERS:
        with atomic_path(p) as tmp:
            _write_container(video, tmp, p, *CONTAINER_WRITERS[suffix])
    elif suffix == ".gif":
        with atomic_path(p) as tmp:
            _write_gif(video, tmp)
    elif suffix == ".png" and video.num_frames == 1:
        with atomic_path(p) as tmp:
            Image.fromarray(video.frames[0]).save(tmp, format="PNG")
    else:
        with atomic_path(p, folder=True, replace=p.is_dir()) as tmp:
            for i, f in enumerate(video.frames):
                Image.fromarray(f).save(tmp / f"{i:06d}.png", compress_level=1)
            (tmp / "video.json").write_text(json.dumps({"fps": video.fps, "frames": video.num_frames}))
    return p


def _write_container(video: Video, tmp: Path, path: Path, muxer: str, codec: str, options: dict) -> None:
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
        raise WriteError(f"cannot encode {path}: {e}") from e


def _write_gif(video: Video, tmp: Path) -> None:
    """GIF delays are whole 1/100 s: each frame gets the step between rounded cumulative times, so
    the clip keeps its duration and rate (30 fps: 3, 3, 4, 3, 3, 4, ... hundredths)."""
    ends = np.round(np.arange(video.num_frames + 1) * 100 / video.fps).astype(np.int64)
    images = [Image.fromarray(f) for f in video.frames]
    images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                   duration=(np.diff(ends) * 10).tolist(), loop=0, disposal=1)
