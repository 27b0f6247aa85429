"""Provenance marks on generated media: signed C2PA manifests (c2pa.py) and an invisible
watermark (watermark.py). Every mode of the Pipeline marks its frames (`watermark=True` by
default); the job runner (kinema.jobs: the CLI's generating commands and the server) chooses
each output's payload and signs the files; `kinema detect` reads both back. The watermark still
misses some of its robustness and PSNR targets (docs/PROVENANCE.md)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

MODEL_BITS = 16  # the payload: a model id (16 bits of its weights' hash) and a serial (16 bits drawn from the request)


def model_id(pipe) -> tuple[str, int]:
    """(the hash of the transformer's own weights, its 16-bit id): the same whether the pipeline is
    compiled or carries adapters (those are in the manifest), computed once per pipeline."""
    digest = pipe.base_digest()
    return digest, int(digest, 16) & (2 ** MODEL_BITS - 1)


def new_payload(pipe, made: dict) -> dict:
    """The watermark payload of an output: the model's id and a serial drawn from what made it
    (`made`: prompt, mode, seed and the call's settings; the same request makes the same file,
    marks included)."""
    digest, ident = model_id(pipe)
    text = json.dumps(made, sort_keys=True, default=str)
    serial = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) % 2 ** (32 - MODEL_BITS)
    return {"weights": digest, "model_id": ident, "serial": serial, "payload": (serial << MODEL_BITS) | ident}


def add_watermark(video, payload: int):
    """The video with `payload` in its pixels (kinema.provenance.watermark)."""
    from ..video import Video
    from .watermark import embed
    return Video(embed(video.frames, payload), video.fps)


def check_watermark(watermark, clips: int = 1):
    """`watermark` as a mode takes it, checked before anything is made: True, False, a 32-bit
    payload, or (a batch) one payload or None per clip."""
    from ..errors import InputError

    def payload(p):
        return isinstance(p, int) and not isinstance(p, bool) and 0 <= p < 2 ** 32
    ok = (isinstance(watermark, bool) or payload(watermark)
          or (isinstance(watermark, (list, tuple)) and len(watermark) == clips
              and all(p is None or payload(p) for p in watermark)))
    if not ok:
        raise InputError(f"watermark is True, False, a payload (an int in [0, 2^32)) or one payload or None per "
                         f"clip ({clips}), got {watermark!r}")
    return watermark


def watermark_videos(pipe, videos, watermark, made: dict):
    """`videos` (a Video or a list of them) marked as `watermark` says: True, each with this
    model's id and a serial drawn from `made` (what the call was: the same call, the same marks)
    and its place in the list; an int, that 32-bit payload; a list, one payload per video (None:
    that one unmarked)."""
    from ..video import Video
    many = not isinstance(videos, Video)
    clips = list(videos) if many else [videos]
    check_watermark(watermark, len(clips))
    if watermark is False:
        return videos
    if watermark is True:
        payloads = [new_payload(pipe, {**made, "clip": i})["payload"] for i in range(len(clips))]
    elif isinstance(watermark, int):
        payloads = [watermark] * len(clips)
    else:
        payloads = list(watermark)
    marked = [v if p is None else add_watermark(v, p) for v, p in zip(clips, payloads)]
    return marked if many else marked[0]


def sign(paths, info: dict, ingredients=(), cert=None, key=None) -> list[str]:
    """Signed manifests on every file of `paths` a C2PA manifest can hold; returns those signed."""
    from .c2pa import sign as sign_one
    return [str(p) for p in paths if p is not None and Path(p).is_file() and not Path(p).is_dir()
            and sign_one(p, info, [i for i in ingredients if i and Path(i).is_file()], cert, key)]


def detect_file(path, trust=None) -> dict:
    """What `kinema detect` reports for one file: the manifest and the watermark."""
    from ..video import Video, probe
    from .c2pa import read
    from .watermark import detect
    h, w = probe(path)  # (a missing or unreadable file: a VideoReadError, before anything else)
    manifest = read(path, trust)
    scale = min(1.0, 256 / max(h, w))  # read small: the mark lives in cells that scale with the frame
    size = (max(16, round(h * scale / 2) * 2), max(16, round(w * scale / 2) * 2))
    frames = Video.read(path, height=size[0], width=size[1], fit="stretch", max_frames=512).frames
    mark = detect(frames)
    if mark.get("payload") is not None:
        mark["model_id"] = mark["payload"] & (2 ** MODEL_BITS - 1)
        mark["serial"] = mark["payload"] >> MODEL_BITS
    return {"file": str(path), "manifest": manifest, "watermark": mark}
