"""Turn the procedural dataset into files: a captioned preview, or an export of clips + metadata."""

from __future__ import annotations

import json
from pathlib import Path

from tqdm import tqdm

from ..atomic import atomic_path
from ..errors import InputError, WriteError
from ..video import CONTAINER_WRITERS, Video
from ..viz import contact_sheet, video_grid
from .synthetic import SyntheticClips

MAX_EXPORT = 1_000_000
EXPORT_FORMATS = tuple(s[1:] for s in CONTAINER_WRITERS) + ("gif",)


def preview(clips: SyntheticClips, out, num: int = 8, start: int = 0, cols: int = 4) -> Path:
    """A labelled picture of `num` clips: a contact sheet (.png) or a tiled, captioned video."""
    if not 1 <= num <= 64:
        raise InputError(f"--num must be between 1 and 64 for a preview, got {num}")
    out = Path(out)
    samples = [clips[start + i] for i in range(num)]
    videos, captions = [c.video for c in samples], [c.caption for c in samples]
    if out.suffix.lower() == ".png":
        Video(contact_sheet(videos, captions)).save(out)
    else:
        video_grid(videos, captions, cols=min(cols, num)).save(out)
    return out


def export(clips: SyntheticClips, out, num: int, start: int = 0, fmt: str = "mp4", progress: bool = True) -> dict:
    """Write `num` clips as video files plus `metadata.jsonl` (file, caption, attributes) into `out`."""
    if not 1 <= num <= MAX_EXPORT:
        raise InputError(f"--num must be between 1 and {MAX_EXPORT}, got {num}")
    if fmt not in EXPORT_FORMATS:
        raise InputError(f"unknown format '{fmt}'; choose one of {', '.join(EXPORT_FORMATS)}")
    out = Path(out)
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
