"""Checkpoint folders: diffusers-style, safetensors only, written atomically. Never pickle.

A model folder holds `model_index.json` (what is inside, versions, the training recipe) and one
sub-folder per component with `config.json` + `model.safetensors`:

    model/
      model_index.json
      autoencoder/{config.json, model.safetensors}
      transformer/{config.json, model.safetensors}
      train_state/{state.json, state.safetensors}    (only in training runs: optimiser, RNG, step)

Every folder is built under a temporary name and switched into place in one step (atomic.py),
so an interrupted save leaves the previous checkpoint intact. Each folder holding weights also
holds `checksums.sha256` (the format `sha256sum -c` reads): the SHA-256 of every weights file,
checked when it is loaded, so a corrupted or truncated file is an error, not a silently wrong
model. A model edited by hand loads with `KINEMA_NO_VERIFY=1` (or without its checksums file).
Configs are checked against the weights' header, and their size against MAX_PARAMS, before
anything is allocated. A training run folder is locked by the process training in it (`lock_run`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Callable, Iterator

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from . import __version__
from .atomic import atomic_path
from .errors import CheckpointError, WriteError
from .limits import MAX_PARAMS

FORMAT = 1  # bump when folders written by older versions can no longer be read
INDEX = "model_index.json"
CHECKSUMS = "checksums.sha256"


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def _read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise CheckpointError(f"{path.parent}: missing {path.name} (not a kinema {what} folder?)")
    try:
        obj = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: corrupt ({e})") from e
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: corrupt (expected a JSON object)")
    return obj


def _tensors(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}


# ------------------------------------------------------------------ components

def save_component(folder: Path, module: torch.nn.Module, config: dict, state: dict | None = None) -> None:
    """Write config.json (+ kinema version and format) and model.safetensors into a new `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    _write_json(folder / "config.json", {**config, "_kinema_version": __version__, "_format": FORMAT})
    write_weights(folder / "model.safetensors", _tensors(state if state is not None else module.state_dict()))


def write_weights(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """A safetensors file, its SHA-256 recorded in its folder's checksums file. Call it inside a
    folder being written atomically (the checksums file is rewritten in place)."""
    try:
        save_file(tensors, str(path))
    except SafetensorError as e:  # e.g. "No space left on device", raised by safetensors' own writer
        raise WriteError(f"cannot write {path.name}: {e}") from e
    sums = _checksums(path.parent)
    sums[path.name] = _sha256(path)
    (path.parent / CHECKSUMS).write_text("".join(f"{h}  {name}\n" for name, h in sorted(sums.items())))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _checksums(folder: Path) -> dict[str, str]:
    """{file name: sha256} from `folder`'s checksums file; {} where there is none."""
    path = folder / CHECKSUMS
    if not path.is_file():
        return {}
    sums = {}
    for line in path.read_text(errors="replace").splitlines():
        digest, _, name = line.partition("  ")
        if len(digest) == 64 and name:
            sums[name.lstrip("*")] = digest.lower()
    return sums


def verify_checksum(path: Path) -> None:
    """Compare a weights file with the SHA-256 recorded when kinema wrote it (nothing to compare
    for folders written before checksums, or with KINEMA_NO_VERIFY=1)."""
    if os.environ.get("KINEMA_NO_VERIFY", "") not in ("", "0"):
        return
    expected = _checksums(path.parent).get(path.name)
    if expected is not None and _sha256(path) != expected:
        raise CheckpointError(f"{path}: checksum mismatch: the file changed after kinema wrote it (corrupt, "
                              f"truncated or edited). If you edited it on purpose, set KINEMA_NO_VERIFY=1 or "
                              f"delete {path.parent / CHECKSUMS}")


def weights_digest(state: dict[str, torch.Tensor]) -> str:
    """A short hash of weights (names and bytes, in order): what was made from one model (cached
    latents, an adapter) is only valid for that model."""
    h = hashlib.sha256()
    for name, tensor in state.items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, checksum verified; an unreadable one is a CheckpointError."""
    if not path.is_file():
        raise CheckpointError(f"{path}: missing weights file")
    verify_checksum(path)
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: corrupt weights ({e})") from e


def weight_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """{tensor name: shape} from a safetensors file's header, without reading the tensors."""
    try:
        with safe_open(str(path), "pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: corrupt weights ({e})") from e


def count_params(build: Callable, config) -> int:
    """Parameters of `build(config)`, counted on the meta device: nothing is allocated."""
    with torch.device("meta"):
        return sum(p.numel() for p in build(config).parameters())


def check_size(folder: Path, build: Callable[[dict], torch.nn.Module], config: dict,
               shapes: dict[str, tuple[int, ...]] | None = None) -> None:
    """Build the module on the meta device (no memory) to refuse, before allocating anything, a
    config over MAX_PARAMS or one whose tensors are not those of the weights file (`shapes`)."""
    try:
        with torch.device("meta"):
            meta = build(config)
    except (TypeError, ValueError, KeyError) as e:  # InputError is a ValueError
        raise CheckpointError(f"{folder}: invalid config.json ({e})") from e
    n = sum(p.numel() for p in meta.parameters())
    if n > MAX_PARAMS:
        raise CheckpointError(f"{folder}: config.json describes {n:,} parameters, over kinema's limit of "
                              f"{MAX_PARAMS:,} (4 GB of float32 weights)")
    if shapes is not None:
        own = {k: tuple(v.shape) for k, v in meta.state_dict().items()}
        wrong = sorted(k for k in own.keys() | shapes.keys() if own.get(k) != shapes.get(k))
        if wrong:
            k = wrong[0]
            raise CheckpointError(f"{folder}: weights do not match config.json ({len(wrong)} tensors differ, e.g. "
                                  f"{k}: config {own.get(k, 'none')}, weights {shapes.get(k, 'none')})")


def load_component(folder: str | Path, build: Callable[[dict], torch.nn.Module]) -> torch.nn.Module:
    """Build a module from `folder/config.json` with `build(config)` and load its weights."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: no such checkpoint folder")
    config = _read_json(folder / "config.json", "component")
    fmt = config.pop("_format", None)
    version = config.pop("_kinema_version", "unknown")
    if fmt != FORMAT:
        raise CheckpointError(f"{folder}: written by kinema {version} in checkpoint format {fmt}; this kinema "
                              f"({__version__}) reads format {FORMAT}. Retrain or use a matching kinema.")
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise CheckpointError(f"{folder}: missing model.safetensors")
    check_size(folder, build, config, weight_shapes(weights))
    state = read_weights(weights)
    try:
        module = build(config)
        module.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, ValueError) as e:
        raise CheckpointError(f"{folder}: weights do not match config.json ({str(e).splitlines()[0]})") from e
    return module


# ------------------------------------------------------------------ model folders

def save_model(folder: str | Path, components: dict[str, tuple[torch.nn.Module, dict]], index: dict,
               extra: dict[str, Callable[[Path], None]] | None = None) -> Path:
    """Atomically (re)write a model folder: `components` maps a name to (module, config); `index`
    is merged into model_index.json; `extra` maps further sub-folders to writer functions."""
    folder = Path(folder)
    with atomic_path(folder, folder=True, replace=True) as tmp:
        for name, (module, config) in components.items():
            save_component(tmp / name, module, config)
        for name, write in (extra or {}).items():
            (tmp / name).mkdir()
            write(tmp / name)
        _write_json(tmp / INDEX, {"_kinema_version": __version__, "_format": FORMAT,
                                  "components": sorted(components), **index})
    return folder


def export_model(src: str | Path, dst: str | Path, dtype: torch.dtype = torch.float16,
                 defaults: dict | None = None, weights: dict[str, dict[str, torch.Tensor]] | None = None,
                 note: dict | None = None) -> Path:
    """A lean copy of the model folder `src` to ship or share: its components with floating-point
    weights stored in `dtype` (they load back into float32 modules), no training state, and its
    sampling defaults updated by `defaults` (e.g. {"steps": 8}); `dst` is written atomically and
    must be absent or empty. The defaults are checked by the Pipeline that first loads the copy.
    `weights` replaces named components' weights (e.g. a transformer with adapters merged into it);
    `note` is added to the copy's model_index.json."""
    src, dst = Path(src), Path(dst)
    index = read_index(src)
    with atomic_path(dst, folder=True) as tmp:
        for name in index["components"]:
            config = _read_json(src / name / "config.json", "component")
            state = (weights or {}).get(name)
            if state is None:
                state = read_weights(src / name / "model.safetensors")
            if name == "transformer" and config.get("align_dim"):  # REPA's projector: for training only
                state = {k: v for k, v in state.items() if not k.startswith("align.")}
                config = {**config, "align_dim": 0}
            (tmp / name).mkdir()
            _write_json(tmp / name / "config.json", config)
            write_weights(tmp / name / "model.safetensors",
                          {k: v.to(dtype) if v.is_floating_point() else v for k, v in _tensors(state).items()})
        _write_json(tmp / INDEX, {**index, "defaults": {**index.get("defaults", {}), **(defaults or {})},
                                  "exported_dtype": str(dtype).removeprefix("torch."), **(note or {})})
        if (src / "domain.safetensors").is_file():  # its out-of-domain statistics (kinema.domain), as they are
            shutil.copyfile(src / "domain.safetensors", tmp / "domain.safetensors")
    return dst


def read_index(folder: str | Path) -> dict:
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: no such model folder")
    index = _read_json(folder / INDEX, "model")
    if index.get("_format") != FORMAT:
        raise CheckpointError(f"{folder}: checkpoint format {index.get('_format')} from kinema "
                              f"{index.get('_kinema_version', 'unknown')}; this kinema reads format {FORMAT}")
    return index


# ------------------------------------------------------------------ training state

def save_state(folder: Path, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Training state as flat tensors (safetensors) + JSON metadata; see train.py for the keys."""
    write_weights(folder / "state.safetensors", _tensors(tensors))
    _write_json(folder / "state.json", meta)


def read_state_meta(folder: str | Path) -> dict:
    """The JSON half of a training state (step, config, ...), without loading its tensors."""
    return _read_json(Path(folder) / "state.json", "training state")


def load_state(folder: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    folder = Path(folder)
    meta = read_state_meta(folder)
    return read_weights(folder / "state.safetensors"), meta


# ------------------------------------------------------------------ run folders

@contextlib.contextmanager
def lock_run(folder: str | Path) -> Iterator[Path]:
    """Hold `folder`'s lock (created if missing) while the block runs: a second process that asks
    for it fails at once with the holder's pid, instead of both writing one run. The lock is an
    flock(2) on folder/.lock, so it dies with its process (kill -9 included): no stale locks."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    except (FileExistsError, NotADirectoryError):
        raise WriteError(f"cannot use {folder} as a run folder: it exists and is not a folder") from None
    except OSError as e:
        raise WriteError(f"cannot use {folder} as a run folder: {e.strerror or e}") from e
    try:
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            fcntl = None
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                raise WriteError(f"{folder} is in use by another kinema process (pid {holder}); wait for it to "
                                 f"finish or choose another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield folder
    finally:
        os.close(fd)  # releases the lock
