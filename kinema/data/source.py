"""The data seam: every training clip comes through a ClipSource.

A source answers, for a clip shape (frames, height, width):

    count(shape) -> int | None      distinct clips of that shape (None: unbounded, made on demand)
    clip(shape, index) -> Clip      clip `index` of that shape: a pure function of (source, shape, index)
    identity() -> dict              what it is: recorded in the recipe, and the key of latent caches

Three kinds: `procedural` (kinema's own captioned shapes, data.synthetic), `natural` (photographs
and dead leaves filmed by a synthetic camera, data.natural) and a folder of footage (data.folder).
`Mixture` draws from several with weights and is itself a source; `open_sources` builds one from
the `data` training setting ("procedural", "natural", "DIR", each with an optional ":WEIGHT",
comma-separated).

Determinism: training reads stream position p = (step * world + rank) * batch_size + j (train.py),
so the data is sharded by rank and a resumed run reads what an uninterrupted one would. For one
unbounded source position p is clip p (as before the seam); otherwise the source and the clip are
drawn from a generator seeded by (seed, shape, p), and a finite source alone is read in a fresh
permutation every epoch. `ClipStream` serves positions to DataLoader workers (sharded by worker).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from ..errors import InputError
from ..video import Video

Shape = tuple[int, int, int]
WINDOWS = ("head", "uniform", "sliding")  # how a folder's videos are cut into clips (data.folder)


@dataclass
class Clip:
    """One training sample: frames uint8 (T, H, W, 3), fps, caption and attributes."""
    frames: np.ndarray
    fps: float
    caption: str
    attributes: dict = field(default_factory=dict)

    @property
    def video(self) -> Video:
        return Video(self.frames, self.fps)


class ClipSource(Protocol):
    name: str

    def count(self, shape: Shape) -> int | None: ...

    def clip(self, shape: Shape, index: int) -> Clip: ...

    def identity(self) -> dict: ...


class ProceduralSource:
    """kinema.data.synthetic's training split at any shape."""

    name = "procedural"

    def __init__(self, seed: int = 0, fps: float = 8.0, split: str = "train"):
        self.seed, self.fps, self.split = seed, fps, split
        self._by_shape: dict = {}

    def _clips(self, shape: Shape):
        from .synthetic import SyntheticClips
        if shape not in self._by_shape:
            self._by_shape[shape] = SyntheticClips(self.split, self.seed, *shape, self.fps)
        return self._by_shape[shape]

    def count(self, shape: Shape) -> None:
        return None

    def clip(self, shape: Shape, index: int) -> Clip:
        return self._clips(shape)[index]

    def identity(self) -> dict:
        from .synthetic import DATASET_VERSION
        return {"source": "procedural", "seed": self.seed, "split": self.split, "version": DATASET_VERSION}


def _shape_seed(shape: Shape) -> int:
    f, h, w = shape
    return (f * 4099 + h) * 4099 + w


class Mixture:
    """Weighted draws from several sources (itself a source). A source with no clip of a shape
    (a folder whose files all went to other aspect buckets) is left out of that shape's draws."""

    name = "mixture"

    def __init__(self, parts: list[tuple[ClipSource, float]], seed: int = 0):
        if not parts:
            raise InputError("no training data: give at least one source")
        self.parts, self.seed = parts, seed
        self._perm: dict = {}

    def count(self, shape: Shape) -> int | None:
        counts = [s.count(shape) for s, _ in self.parts]
        return None if any(c is None for c in counts) else sum(counts)

    def _live(self, shape: Shape):
        live = [(s, w) for s, w in self.parts if s.count(shape) != 0 and w > 0]
        if not live:
            raise InputError(f"no training data has clips of {'x'.join(map(str, shape))} "
                             f"(frames x height x width)")
        return live

    def clip(self, shape: Shape, position: int) -> Clip:
        live = self._live(shape)
        if len(live) == 1:
            source = live[0][0]
            n = source.count(shape)
            return source.clip(shape, position if n is None else self._permuted(shape, position, n))
        rng = np.random.default_rng([self.seed, _shape_seed(shape), int(position)])
        w = np.array([w for _, w in live], np.float64)
        source = live[int(rng.choice(len(live), p=w / w.sum()))][0]
        n = source.count(shape)
        return source.clip(shape, position if n is None else int(rng.integers(n)))

    def _permuted(self, shape: Shape, position: int, n: int) -> int:
        """Index at `position` of a finite source read alone: a fresh permutation every epoch."""
        epoch, k = divmod(position, n)
        key = (shape, epoch)
        if key not in self._perm:
            self._perm = {key: torch.randperm(n, generator=torch.Generator().manual_seed(
                self.seed * 7919 + epoch + _shape_seed(shape)))}
        return int(self._perm[key][k])

    def identity(self) -> dict:
        return {"mixture": [{**s.identity(), "weight": w} for s, w in self.parts], "seed": self.seed}

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[:16]


def parse_data(spec: str) -> list[tuple[str, float]]:
    """"procedural,runs/footage:2" -> [("procedural", 1.0), ("runs/footage", 2.0)]; "" -> procedural.
    A weight is a finite number > 0 after the last colon."""
    parts = []
    for item in filter(None, (p.strip() for p in (spec or "procedural").split(","))):
        name, sep, tail = item.rpartition(":")
        weight = 1.0
        if sep and Path(item).expanduser().is_dir():  # a folder whose name has a colon
            name, sep = item, ""
        if sep:
            try:
                weight = float(tail)
            except ValueError:
                name, weight = item, 1.0  # a colon inside a path
            else:
                if not (math.isfinite(weight) and 0 < weight <= 1e6):
                    raise InputError(f"--data {item}: the weight after ':' must be a number in (0, 1e6], got {tail!r}")
        parts.append((name or item, weight))
    if not parts:
        raise InputError("--data names no source")
    return parts


def check_data(spec: str) -> None:
    """What can be checked when settings are parsed: the syntax, and that folders exist."""
    for name, _ in parse_data(spec):
        if name not in ("procedural", "natural") and not Path(name).expanduser().is_dir():
            raise InputError(f"--data {name}: no such folder (give a folder of footage, 'procedural' or 'natural')")


def open_sources(spec: str, *, seed: int, fps: float, shapes: list[Shape], trigger: str = "",
                 windows: str = "uniform", progress: bool = True) -> Mixture:
    """The training data the `data` setting describes, for clips of `shapes` at `fps`."""
    parts = []
    for name, weight in parse_data(spec):
        if name == "procedural":
            source = ProceduralSource(seed, fps)
        elif name == "natural":
            from .natural import NaturalClips
            source = NaturalClips(seed, fps)
        else:
            from .folder import FolderSource
            source = FolderSource(name, fps=fps, shapes=shapes, trigger=trigger, windows=windows, progress=progress)
        parts.append((source, weight))
    return Mixture(parts, seed)


class ClipStream(torch.utils.data.IterableDataset):
    """Positions start, start + 1, ... of a source at one shape, split across DataLoader workers
    and torchrun ranks without repeats. Yields dicts: video (3, T, H, W) in [-1, 1], caption,
    attributes, index; `collate` batches them."""

    def __init__(self, source: ClipSource, shape: Shape, start: int = 0, limit: int | None = None):
        super().__init__()
        self.source, self.shape, self.start, self.limit = source, shape, start, limit

    def __iter__(self):
        from .synthetic import shard
        k, n = shard()
        stop = None if self.limit is None else self.start + self.limit
        for i in itertools.count(self.start + k, n):
            if stop is not None and i >= stop:
                return
            clip = self.source.clip(self.shape, i)
            yield {"video": clip.video.to_tensor(), "caption": clip.caption, "attributes": clip.attributes, "index": i}

    @staticmethod
    def collate(items: list[dict]) -> dict:
        return {"video": torch.stack([x["video"] for x in items]), "caption": [x["caption"] for x in items],
                "attributes": [x["attributes"] for x in items], "index": torch.tensor([x["index"] for x in items])}
