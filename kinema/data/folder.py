"""A folder of footage as training data: videos and photos in a tree, with their captions.

Layout (what finetrainers, musubi-tuner and diffusion-pipe users keep on disk):

    footage/
      beach.mp4          beach.txt         <- a caption beside the file, same name
      city/night.mov     city/night.txt
      portrait.jpg                          <- a still image: a 1-frame clip
      metadata.jsonl                        <- or {"file": "...", "caption": "..."} per line
      metadata.csv                          <- or columns file,caption

Videos (mp4, mov, mkv, webm, avi, gif) and images (png, jpg, webp, ...) anywhere in the tree.
For the training shapes (frames x height x width), each file goes to the aspect bucket (a
height x width among the shapes) nearest its own aspect and is read at the training fps, resized
to cover the bucket and centre-cropped, through kinema's safe reader (bounded memory and time).
A video is split at scene cuts (`scene_cuts`: a cheap frame-difference detector) and each shot is
cut into windows of the shape's 4k+1 frames (a video over the reader's caps, MAX_FRAMES at the
training fps or about a minute of decoding, contributes its first frames up to them): `head`
(the first window of each shot), `uniform`
(as many non-overlapping windows as fit, evenly spread) or `sliding` (every window, half
overlapping). Images are clips of the 1-frame shapes. A file that cannot be read is skipped and
listed with the reason; a shot shorter than a window is dropped and counted; a scan that finds
nothing to train on is an error that says why.

Clip `index` of a shape is window `index` of that shape in scan order: a pure function of the
folder's contents, so a resumed run reads what an uninterrupted one would. Decoded files are
kept in memory up to a byte budget and decoded again (identically) when evicted.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import math
import os
import stat
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..errors import CheckpointError, DatasetError, KinemaError
from ..video import IMAGE_SUFFIXES, probe, read_video
from .source import WINDOWS, Clip, Shape

VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".gif"}
MEDIA_SUFFIXES = VIDEO_SUFFIXES | IMAGE_SUFFIXES
METADATA_FILES = ("metadata.jsonl", "metadata.csv")
FILE_KEYS = ("file", "file_name", "path", "video", "image")  # the column naming the file
CAPTION_KEYS = ("caption", "text", "prompt")
MAX_CAPTION_BYTES = 1 << 16  # a caption file is text, not a novel
MAX_METADATA_BYTES = 64 << 20
FOLDER_VERSION = 1  # bump when the same folder would give other clips (latent caches key on it)


# ------------------------------------------------------------------ what is in the folder

def find_media(root: Path) -> list[Path]:
    """Video and image files under `root`, sorted; hidden files and folders are left out and
    linked folders are not followed (a link loop would never end)."""
    found = []
    for here, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(here) / f for f in sorted(files)
                  if not f.startswith(".") and Path(f).suffix.lower() in MEDIA_SUFFIXES]
    return found


def _read_text(p: Path, limit: int) -> str:
    """A caption or metadata file's text (a BOM dropped), opened as the video reader opens files:
    regular files only, without blocking (a FIFO swapped in would wait for ever)."""
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise DatasetError(f"{p}: cannot open ({e.strerror})") from e
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise DatasetError(f"{p}: not a regular file")
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise DatasetError(f"{p}: over {limit} bytes; is it really a caption file?")
    return data.decode("utf-8-sig", errors="replace")


def _metadata_rows(p: Path) -> list[dict]:
    text = _read_text(p, MAX_METADATA_BYTES)
    if p.suffix == ".csv":
        try:
            return list(csv.DictReader(io.StringIO(text)))
        except csv.Error as e:
            raise DatasetError(f"{p}: not a readable CSV ({e})") from e
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                row = json.loads(line)
            except (ValueError, RecursionError) as e:
                raise DatasetError(f"{p} line {n}: not JSON ({e})") from e
            if not isinstance(row, dict):
                raise DatasetError(f"{p} line {n}: expected an object with 'file' and 'caption'")
            rows.append(row)
    return rows


def read_captions(root: Path, files: list[Path]) -> dict[Path, str]:
    """Caption of each file that has one: a same-name .txt beside it wins over a metadata.jsonl /
    metadata.csv row (whose `file` is relative to the metadata file's folder)."""
    captions: dict[Path, str] = {}
    for here, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for meta in METADATA_FILES:
            if meta not in names:
                continue
            try:
                rows = _metadata_rows(Path(here) / meta)
            except DatasetError as e:  # one bad metadata file loses its captions, not the scan
                warnings.warn(f"{e}; its captions are not used")
                continue
            for row in rows:
                name = next((row[k] for k in FILE_KEYS if isinstance(row.get(k), str) and row[k]), None)
                caption = next((row[k] for k in CAPTION_KEYS if isinstance(row.get(k), str)), None)
                if name is not None and caption is not None:
                    captions[Path(os.path.normpath(Path(here) / name))] = caption
    for f in files:
        txt = f.with_suffix(".txt")
        if txt.exists():
            try:
                captions[f] = _read_text(txt, MAX_CAPTION_BYTES)
            except DatasetError as e:
                warnings.warn(f"{e}; {f.name} trains without it")
    wanted = set(files)
    return {f: " ".join(c.split()) for f, c in captions.items() if f in wanted}


def with_trigger(caption: str, trigger: str) -> str:
    return " ".join(filter(None, (trigger.strip(), caption.strip())))


# ------------------------------------------------------------------ shots and windows

def scene_cuts(frames: np.ndarray) -> list[int]:
    """Frames that start a new shot, for uint8 (T, H, W, 3): a cut is a jump in both the colour
    histogram and the pixels that stands far above the frame-to-frame change around it (so a fast
    pan or a moving object, which change pixels steadily, is not a cut). Vectorised over frames."""
    T = len(frames)
    if T < 2:
        return []
    step = max(1, max(frames.shape[1:3]) // 32)  # 32-ish pixels a side is plenty to see a cut
    x = frames[:, ::step, ::step].astype(np.int64)
    n = x.shape[1] * x.shape[2]
    bins = (x // 32) + np.arange(3) * 8  # 8 levels per channel, channels side by side: 24 bins
    hist = np.stack([np.bincount(b.ravel(), minlength=24) for b in bins]) / n  # (T, 24)
    d_hist = np.abs(np.diff(hist, axis=0)).sum(1) / 6  # 0 (same colours) .. 1 (disjoint)
    luma = x @ np.array([299, 587, 114]) / 255_000  # 0..1
    d_pix = np.abs(np.diff(luma, axis=0)).mean((1, 2))
    cuts = []
    for i in range(T - 1):
        around = np.concatenate([d_pix[max(0, i - 4):i], d_pix[i + 1:i + 5]])
        usual = float(np.median(around)) if len(around) else 0.0
        if d_pix[i] > max(0.08, 3 * usual) and (d_hist[i] > 0.2 or d_pix[i] > max(0.2, 6 * usual)):
            cuts.append(i + 1)
    return cuts


def window_starts(length: int, frames: int, how: str) -> list[int]:
    """First frames of the windows of `frames` frames in a shot of `length` frames."""
    if length < frames:
        return []
    if how == "head":
        return [0]
    if how == "sliding":
        return list(range(0, length - frames + 1, max(1, (frames - 1) // 2)))
    k = length // frames  # uniform: non-overlapping, evenly spread
    return [(length - frames) // 2] if k == 1 else [round(v) for v in np.linspace(0, length - frames, k)]


def nearest_bucket(height: int, width: int, sizes: list[tuple[int, int]]) -> tuple[int, int]:
    """The (height, width) among `sizes` whose aspect is nearest (in log ratio) the file's."""
    a = math.log(width / height)
    return min(sizes, key=lambda s: abs(math.log(s[1] / s[0]) - a))


# ------------------------------------------------------------------ the source

@dataclass
class FileEntry:
    path: Path
    rel: str
    caption: str | None
    kind: str  # "video" or "image"
    bucket: tuple[int, int]
    frames: int = 0  # at the training fps
    shots: int = 0
    seconds: float = 0.0
    stamp: tuple = ()  # (size, modification time in ns) when scanned: the file's identity for caches


@dataclass
class ScanReport:
    root: str
    fps: float
    files: list[FileEntry] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, why)
    dropped: list[tuple[str, str]] = field(default_factory=list)  # shots too short: (file, why)
    windows: dict = field(default_factory=dict)  # "FxHxW" -> count

    def to_dict(self) -> dict:
        with_caption = sum(f.caption is not None for f in self.files)
        return {"root": self.root, "fps": self.fps,
                "files": len(self.files), "videos": sum(f.kind == "video" for f in self.files),
                "images": sum(f.kind == "image" for f in self.files),
                "seconds": round(sum(f.seconds for f in self.files), 2),
                "captions": {"found": with_caption, "missing": len(self.files) - with_caption},
                "windows": self.windows,
                "buckets": {f"{h}x{w}": sum(f.bucket == (h, w) for f in self.files)
                            for h, w in sorted({f.bucket for f in self.files})},
                "scene_cuts": sum(max(0, f.shots - 1) for f in self.files),
                "skipped": [{"file": f, "reason": r} for f, r in self.skipped],
                "dropped": [{"file": f, "reason": r} for f, r in self.dropped]}


class FolderSource:
    """The clips of a folder of footage for the training `shapes` at `fps` (see the module doc)."""

    name = "folder"

    def __init__(self, root, *, fps: float, shapes: list[Shape], trigger: str = "", windows: str = "uniform",
                 progress: bool = True, cache_bytes: int = 1 << 30):
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DatasetError(f"--data {root}: no such folder")
        if windows not in WINDOWS:
            raise DatasetError(f"windows must be one of {', '.join(WINDOWS)}, got {windows!r}")
        self.fps, self.shapes, self.trigger, self.how = float(fps), sorted(set(shapes)), trigger, windows
        self.sizes = sorted({(h, w) for _, h, w in self.shapes})
        # each file goes to the nearest size that has a shape of its kind (stills: 1 frame)
        self.image_sizes = sorted({(h, w) for f, h, w in self.shapes if f == 1})
        self.video_sizes = sorted({(h, w) for f, h, w in self.shapes if f > 1})
        self.cache_bytes = cache_bytes
        self._cache: OrderedDict = OrderedDict()
        self._held = 0
        self.report = ScanReport(str(self.root), self.fps)
        self.index: dict[Shape, list[tuple[int, int]]] = {s: [] for s in self.shapes}  # (file, start)
        self._scan(progress)

    # -- scanning
    def _scan(self, progress: bool) -> None:
        media = find_media(self.root)
        if not media:
            raise DatasetError(f"{self.root}: no videos or images found (looked for "
                               f"{', '.join(sorted(MEDIA_SUFFIXES))})")
        captions = read_captions(self.root, media)
        for path in tqdm(media, desc=f"scan {self.root.name}", unit="file", disable=not progress):
            rel = path.relative_to(self.root).as_posix()
            kind = "image" if path.suffix.lower() in IMAGE_SUFFIXES else "video"
            sizes = self.image_sizes if kind == "image" else self.video_sizes
            if not sizes:
                self.report.dropped.append((rel, "an image (a 1-frame clip), and no training shape has 1 frame"
                                            if kind == "image" else "a video, and every training shape is 1 frame"))
                continue
            try:
                bucket = nearest_bucket(*probe(path), sizes)
                st = path.stat()
                entry = FileEntry(path, rel, captions.get(path), kind, bucket, stamp=(st.st_size, st.st_mtime_ns))
                frames = self._decode(len(self.report.files), entry)
            except KinemaError as e:
                self.report.skipped.append((rel, str(e).replace(f"{path}: ", "")))
                continue
            except OSError as e:  # gone or unreadable between listing and reading
                self.report.skipped.append((rel, e.strerror or str(e)))
                continue
            entry.frames, entry.seconds = len(frames), (len(frames) / self.fps if kind == "video" else 0.0)
            k = len(self.report.files)
            self.report.files.append(entry)
            if kind == "image":
                for shape in self.shapes:
                    if shape[0] == 1 and shape[1:] == bucket:
                        self.index[shape].append((k, 0))
                continue
            bounds = [0, *scene_cuts(frames), len(frames)]
            entry.shots = len(bounds) - 1
            for shape in self.shapes:
                F = shape[0]
                if F == 1 or shape[1:] != bucket:
                    continue
                for s, e in zip(bounds[:-1], bounds[1:]):
                    starts = window_starts(e - s, F, self.how)
                    self.index[shape] += [(k, s + t) for t in starts]
                    if not starts:
                        self.report.dropped.append((rel, f"a shot of {e - s} frames at {self.fps:g} fps (frames "
                                                          f"{s}-{e - 1}) is shorter than one {F}-frame window"))
        self.report.windows = {"x".join(map(str, s)): len(v) for s, v in self.index.items()}
        if not any(self.index.values()):
            raise DatasetError(self._empty_reason())
        r = self.report
        if r.skipped:
            warnings.warn(f"{self.root}: skipped {len(r.skipped)} file(s) that cannot be read, e.g. "
                          f"{r.skipped[0][0]}: {r.skipped[0][1]} (`kinema dataset scan` lists them all)")
        missing = self.missing_captions()
        if missing:
            warnings.warn(f"{self.root}: {missing} of {len(r.files)} file(s) have no caption; they train with "
                          + (f"the trigger '{self.trigger}' alone" if self.trigger.strip() else "an empty caption"))

    def _empty_reason(self) -> str:
        r = self.report
        shapes = ", ".join("x".join(map(str, s)) for s in self.shapes)
        why = [f"{len(r.skipped)} files could not be read (e.g. {r.skipped[0][0]}: {r.skipped[0][1]})"] if r.skipped else []
        if r.dropped:
            why.append(f"{len(r.dropped)} files or shots were left out (e.g. {r.dropped[0][0]}: {r.dropped[0][1]})")
        return f"{self.root}: no training clips of {shapes}: " + ("; ".join(why) or "nothing usable")

    def _decode(self, k: int, entry: FileEntry) -> np.ndarray:
        key = (k, entry.bucket)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        # head: a long or huge video is read up to the reader's caps (its first minutes), not skipped
        video = read_video(entry.path, fps=self.fps, height=entry.bucket[0], width=entry.bucket[1], fit="crop",
                           head=True)
        frames = video.frames[:1].copy() if entry.kind == "image" else video.frames
        if entry.frames and len(frames) != entry.frames:  # decoded again after eviction: the same file?
            raise DatasetError(f"{entry.path}: changed since the folder was scanned ({entry.frames} frames then, "
                               f"{len(frames)} now); training reads what the scan saw: restart or resume from "
                               f"an unchanged folder")
        self._cache[key] = frames
        self._held += frames.nbytes
        while self._held > self.cache_bytes and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._held -= old.nbytes
        return frames

    # -- the source protocol
    def count(self, shape: Shape) -> int:
        return len(self.index.get(tuple(shape), ()))

    def clip(self, shape: Shape, index: int) -> Clip:
        k, start = self.index[tuple(shape)][index]
        entry = self.report.files[k]
        frames = self._decode(k, entry)[start:start + shape[0]]
        return Clip(np.ascontiguousarray(frames), self.fps, with_trigger(entry.caption or "", self.trigger),
                    {"file": entry.rel, "start": start})

    def caption(self, shape: Shape, index: int) -> str:
        """Clip `index`'s caption (the trigger in front), without decoding it."""
        return with_trigger(self.report.files[self.index[tuple(shape)][index][0]].caption or "", self.trigger)

    def clip_key(self, shape: Shape, index: int) -> str:
        """What clip `index` of `shape` is, without decoding it: its file (resolved path, size and
        modification time at the scan), window start, shape and fps; the key of its cached latents."""
        k, start = self.index[tuple(shape)][index]
        f = self.report.files[k]
        return json.dumps([str(f.path.resolve()), *f.stamp, start, list(shape), self.fps, FOLDER_VERSION])

    def identity(self) -> dict:
        h = hashlib.sha256()
        for f in self.report.files:
            try:
                st = f.path.stat()
            except OSError as e:
                raise DatasetError(f"{f.path}: gone since the folder was scanned ({e.strerror})") from e
            h.update(json.dumps([f.rel, st.st_size, st.st_mtime_ns, f.caption, f.frames, f.bucket]).encode())
        return {"source": "folder", "path": str(self.root.resolve()), "files": h.hexdigest()[:16],
                "fps": self.fps, "windows": self.how, "trigger": self.trigger, "version": FOLDER_VERSION}

    def __getstate__(self):  # to a DataLoader worker or a spawned process: without the decoded cache
        state = dict(self.__dict__)
        state["_cache"], state["_held"] = OrderedDict(), 0
        return state

    def missing_captions(self) -> int:
        return sum(f.caption is None for f in self.report.files)


# ------------------------------------------------------------------ for `kinema dataset scan`

def scan_shapes(text: str | None) -> list[Shape]:
    """Shapes given as "17x64x64,1x64x64"; by default the shipped model's trained shapes and a
    1-frame shape of each of their sizes (what a fine-tune of it reads: videos and images)."""
    from ..checkpoint import read_index
    from ..config import parse_shapes
    from ..pipeline import SPATIAL, shipped_model
    if text:
        return parse_shapes(text, (17, 64, 64), SPATIAL)
    trained = ["17x64x64"]
    folder = shipped_model()
    if folder is not None:
        with contextlib.suppress(CheckpointError):
            trained = read_index(folder).get("trained_shapes") or trained
    shapes = parse_shapes(",".join(trained), (17, 64, 64), SPATIAL)
    return shapes + sorted({(1, h, w) for _, h, w in shapes})


def sample_sheet(source: FolderSource, path, num: int = 8) -> Path:
    """A contact sheet of `num` windows spread over every shape, each with its file and caption."""
    from PIL import Image

    from ..atomic import atomic_path
    from ..viz import contact_sheet
    picks = [(s, i) for s, idx in source.index.items() for i in range(len(idx))]
    picks = [picks[int(j)] for j in np.unique(np.linspace(0, len(picks) - 1, min(num, len(picks))).round())]
    clips = [(source.clip(s, i), s) for s, i in picks]
    sheet = contact_sheet([c.video for c, _ in clips],
                          [f"{c.attributes['file']} @{c.attributes['start']} ({'x'.join(map(str, s))}): "
                           f"{c.caption or '(no caption)'}" for c, s in clips])
    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(sheet).save(tmp, format="PNG")
    return path
