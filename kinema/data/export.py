"""Turn the procedural dataset into files: a captioned preview, or an export of clips + metadata."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tqdm import tqdm

from ..atomic import atomic_path
from ..errors import InputError, WriteError
from ..limits import MAX_EXPORT, MAX_PREVIEW, MAX_PREVIEW_PIXELS
from ..video import CONTAINER_WRITERS, GIF_MAX_FPS, Video, check_output
from ..viz import contact_sheet, video_grid
from .synthetic import SyntheticClips, check_index

EXPORT_FORMATS = tuple(s[1:] for s in CONTAINER_WRITERS) + ("gif",)


def preview(clips: SyntheticClips, out, num: int = 8, start: int = 0, cols: int = 4) -> Path:
    """A labelled picture of `num` clips: a contact sheet (.png) or a tiled, captioned video."""
    num, start = _check_count(num, 1, MAX_PREVIEW, "a preview"), check_index(start, "start")
    pixels = num * clips.frames * clips.height * clips.width
    if pixels > MAX_PREVIEW_PIXELS:
        raise InputError(f"a preview of {num} clips of {clips.frames} frames x {clips.height}x{clips.width} is "
                         f"{pixels:,} pixels, over the limit of {MAX_PREVIEW_PIXELS:,}: show fewer clips, "
                         f"fewer frames or a smaller size (or `kinema dataset export` the clips)")
    sheet = Path(out).suffix.lower() == ".png"
    out = check_output(out, frames=1 if sheet else clips.frames, fps=None if sheet else clips.fps)
    samples = [clips[start + i] for i in range(num)]
    videos, captions = [c.video for c in samples], [c.caption for c in samples]
    if sheet:
        Video(contact_sheet(videos, captions)).save(out)
    else:
        video_grid(videos, captions, cols=min(cols, num)).save(out)
    return out


def _check_count(num, lo: int, hi: int, what: str) -> int:
    if isinstance(num, bool) or not isinstance(num, int) or not lo <= num <= hi:
        raise InputError(f"--num must be a whole number between {lo} and {hi:,} for {what}, got {num!r}")
    return num


def export(clips: SyntheticClips, out, num: int, start: int = 0, fmt: str = "mp4", progress: bool = True) -> dict:
    """Write `num` clips as video files plus `metadata.jsonl` (file, caption, attributes) into `out`."""
    num, start = _check_count(num, 1, MAX_EXPORT, "an export"), check_index(start, "start")
    if fmt not in EXPORT_FORMATS:
        raise InputError(f"unknown format '{fmt}'; choose one of {', '.join(EXPORT_FORMATS)}")
    if fmt == "gif" and clips.fps > GIF_MAX_FPS:
        raise InputError(f"a GIF holds at most {GIF_MAX_FPS:g} fps, got {clips.fps:g}: export mp4 or lower the fps")
    out = Path(out)
    if out.is_dir():
        check_output(out / f"clip.{fmt}")
        meta = out / "metadata.jsonl"
        if (meta.exists() or meta.is_symlink()) and not meta.is_file():
            raise WriteError(f"cannot write {meta}: it exists and is not a regular file")
    else:
        _check_new_folder(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WriteError(f"cannot create folder {out}: {e.strerror or e}") from e
    lines = []
    for i in tqdm(range(start, start + num), desc="export", unit="clip", disable=not progress):
        clip = clips[i]
        name = f"{clips.split}_{i:06d}.{fmt}"
        clip.video.save(out / name)
        lines.append(json.dumps({"file": name, "caption": clip.caption, **clip.attributes}))
    meta = out / "metadata.jsonl"
    with atomic_path(meta) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return {"out": str(out), "metadata": str(meta), "clips": num, "split": clips.split, "format": fmt,
            "frames": clips.frames, "height": clips.height, "width": clips.width, "fps": clips.fps}


def _check_new_folder(out: Path) -> None:
    """`out` can be made: nothing is there, and the nearest folder above it that exists is
    writable (checked before the first clip is rendered)."""
    if out.exists() or out.is_symlink():
        raise WriteError(f"cannot write into {out}: it exists and is not a folder")
    above = out.parent
    while not above.exists():
        above = above.parent
    if not above.is_dir() or not os.access(above, os.W_OK | os.X_OK):
        raise WriteError(f"cannot create folder {out}: {above} is not a writable folder")
