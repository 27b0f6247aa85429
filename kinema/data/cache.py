"""Latents and text states on disk: a second training run (or a resume) on the same footage
encodes nothing again.

An entry is named by a hash of everything its tensors depend on. Latents: the autoencoder's
weights (their digest), the clip's source key (FolderSource.clip_key: the file's path, size and
modification time, the window's start, the bucket and the fps) and the clip's shape. Text
states: the text encoder's weights and the caption. An edited file, another autoencoder or
another fps gives another name, so a stale entry is never read; entries are written atomically,
and one that cannot be read back (a disk error, a torn copy) is encoded again.

    $KINEMA_CACHE (default ~/.cache/kinema), or --cache DIR
      latents/ab/abcdef0123....safetensors     {"latents": (C, T, H, W) float16}
      text/12/12ab....safetensors              {"states": (L, dim) float32}
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..atomic import atomic_path
from ..errors import WriteError


def default_cache_dir() -> Path:
    return Path(os.environ.get("KINEMA_CACHE") or Path.home() / ".cache" / "kinema").expanduser()


def entry_key(*parts) -> str:
    """The name of an entry: a hash of what it depends on (JSON-able parts)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


class DiskCache:
    """Named tensors under `root`, one small safetensors file an entry."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root).expanduser() if root else default_cache_dir()
        self.hits = self.misses = 0

    def path(self, kind: str, key: str) -> Path:
        return self.root / kind / key[:2] / f"{key}.safetensors"

    def get(self, kind: str, key: str) -> dict[str, torch.Tensor] | None:
        p = self.path(kind, key)
        if p.is_file():
            try:
                tensors = load_file(str(p))
                self.hits += 1
                return tensors
            except (SafetensorError, OSError, ValueError, RuntimeError):
                pass  # unreadable: made again below by the caller, and rewritten
        self.misses += 1
        return None

    def put(self, kind: str, key: str, tensors: dict[str, torch.Tensor]) -> None:
        p = self.path(kind, key)
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(p) as tmp:
                save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
        except (OSError, SafetensorError) as e:
            raise WriteError(f"cannot write the encoding cache in {self.root}: {getattr(e, 'strerror', None) or e} "
                             f"(choose another with --cache DIR or KINEMA_CACHE)") from e
