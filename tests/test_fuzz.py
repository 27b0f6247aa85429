"""Fuzzing the readers: a mutated or random file either reads as a valid Video within the caps or
raises a KinemaError, never a library's exception, and never slowly.

Seeds are small valid files made here (mp4, webm, gif, png); hypothesis flips, inserts, deletes
and truncates their bytes, rewrites header fields (PNG IHDR size, GIF screen size, mp4 box
fields such as mvhd, tkhd, stsz) and also tries random bytes behind each suffix and magic.
`derandomize=True` makes a CI run reproducible; the examples are sized to ~20 s in all.
"""

import functools
import shutil
import struct
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from kinema.errors import KinemaError
from kinema.video import MAX_FPS, MIN_FPS, Video

CAPS = {"max_frames": 64, "max_pixels": 64 * 64 * 64}
SECONDS = 5.0  # per read: a generous bound on a shared 2-core machine (the reads take milliseconds)
# No shrinking: a failure is reported at once with the example and a blob to reproduce it.
FUZZ = settings(derandomize=True, database=None, deadline=None, print_blob=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
SUFFIXES = [".mp4", ".webm", ".gif", ".png"]
MP4_BOXES = [b"mvhd", b"tkhd", b"mdhd", b"stsd", b"avcC", b"stts", b"stsz", b"stco", b"elst"]
INTERESTING = [0, 1, 2, 0x7F, 0xFF, 0x7FFF, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]


@functools.cache
def seeds() -> dict[str, bytes]:
    """Five 16x16 frames of a square moving over a gradient, in each format."""
    folder = Path(tempfile.mkdtemp(prefix="kinema-fuzz-seeds-"))
    y, x = np.mgrid[:16, :16]
    frames = np.stack([np.stack([x * 16, y * 16, ((x - t) % 16 < 4) * 255], -1) for t in range(5)])
    video = Video(frames.astype(np.uint8), 8)
    out = {s: video.save(folder / f"seed{s}").read_bytes() for s in SUFFIXES if s != ".png"}
    out[".png"] = Video(video.frames[2]).save(folder / "seed.png").read_bytes()
    shutil.rmtree(folder)
    return out


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def check_read(path, fitting: bool) -> None:
    """The property: a valid Video within the caps, or a KinemaError; quickly either way."""
    t0 = time.perf_counter()
    try:
        video = Video.read(path, **CAPS, **({"fps": 4, "height": 16, "width": 24} if fitting else {}))
    except KinemaError:
        pass
    else:
        f = video.frames
        assert f.dtype == np.uint8 and f.ndim == 4 and f.shape[-1] == 3 and len(f) >= 1
        assert len(f) <= CAPS["max_frames"] and f.shape[0] * f.shape[1] * f.shape[2] <= CAPS["max_pixels"]
        assert MIN_FPS <= video.fps <= MAX_FPS
        assert not fitting or f.shape[1:3] == (16, 24)
    assert time.perf_counter() - t0 < SECONDS


# Edits: (kind, position as a fraction of the file, bytes). Positions scale to any file length.
EDITS = st.lists(st.tuples(st.sampled_from(["flip", "insert", "delete", "overwrite"]),
                           st.floats(0, 1, exclude_max=True), st.binary(min_size=1, max_size=16)), max_size=6)


def mutate(data: bytes, edits, cut) -> bytes:
    b = bytearray(data)
    for kind, where, chunk in edits:
        i = int(where * len(b)) if b else 0
        if kind == "flip" and b:
            b[i] ^= chunk[0] or 0x80
        elif kind == "insert":
            b[i:i] = chunk
        elif kind == "delete":
            del b[i:i + len(chunk)]
        else:
            b[i:i + len(chunk)] = chunk
    return bytes(b[: int(cut * len(b))] if cut is not None else b)


@settings(FUZZ, max_examples=600)
@given(suffix=st.sampled_from(SUFFIXES), edits=EDITS, cut=st.none() | st.floats(0, 1),
       fitting=st.booleans())
def test_mutated_files(scratch, suffix, edits, cut, fitting):
    path = scratch / f"mutated{suffix}"
    path.write_bytes(mutate(seeds()[suffix], edits, cut))
    check_read(path, fitting)


def _png_with_size(data: bytes, width: int, height: int) -> bytes:
    """The seed PNG claiming another size, with a valid IHDR checksum so Pillow believes it."""
    ihdr = data[12:16] + struct.pack(">II", width, height) + data[24:29]
    return data[:12] + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + data[33:]


@settings(FUZZ, max_examples=150)
@given(width=st.sampled_from(INTERESTING) | st.integers(0, 2**32 - 1),
       height=st.sampled_from(INTERESTING) | st.integers(0, 2**32 - 1), fitting=st.booleans())
def test_png_claiming_any_size(scratch, width, height, fitting):
    path = scratch / "sized.png"
    path.write_bytes(_png_with_size(seeds()[".png"], width, height))
    check_read(path, fitting)


@settings(FUZZ, max_examples=40)
@given(width=st.integers(0, 0xFFFF), height=st.integers(0, 0xFFFF), fitting=st.booleans())
def test_gif_claiming_any_screen_size(scratch, width, height, fitting):
    path = scratch / "sized.gif"
    data = seeds()[".gif"]
    path.write_bytes(data[:6] + struct.pack("<HH", width, height) + data[10:])
    check_read(path, fitting)


@settings(FUZZ, max_examples=300)
@given(box=st.sampled_from(MP4_BOXES), offset=st.integers(0, 96),
       value=st.sampled_from(INTERESTING) | st.integers(0, 2**32 - 1), fitting=st.booleans())
def test_mp4_box_fields(scratch, box, offset, value, fitting):
    """Rewrite one 32-bit field of an mp4 box: durations, time scales, sizes, sample counts."""
    data = bytearray(seeds()[".mp4"])
    at = data.find(box)
    if at < 0:
        return
    i = min(at + 4 + offset, len(data) - 4)
    data[i:i + 4] = struct.pack(">I", value)
    path = scratch / "boxes.mp4"
    path.write_bytes(bytes(data))
    check_read(path, fitting)


MAGIC = [b"", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"\x1aE\xdf\xa3", b"\x00\x00\x00\x18ftypisom", b"RIFF",
         b"\xff\xd8\xff", b"II*\x00", b"#EXTM3U\n", b"ffconcat version 1.0\n"]


@settings(FUZZ, max_examples=400)
@given(suffix=st.sampled_from(SUFFIXES + [".mkv", ".avi", ".jpg", ".tif", ""]), magic=st.sampled_from(MAGIC),
       body=st.binary(max_size=2048), fitting=st.booleans())
def test_random_bytes(scratch, suffix, magic, body, fitting):
    path = scratch / f"random{suffix}"
    path.write_bytes(magic + body)
    check_read(path, fitting)
