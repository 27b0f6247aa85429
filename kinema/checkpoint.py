"""Checkpoint folders: diffusers-style, safetensors only, written atomically. Never pickle.

A model folder holds `model_index.json` (what is inside, versions, the training recipe) and one
sub-folder per component with `config.json` + `model.safetensors`:

    model/
      model_index.json
      autoencoder/{config.json, model.safetensors}
      transformer/{config.json, model.safetensors}
      train_state/{state.json, state.safetensors}    (only in training runs: optimiser, RNG, step)

Every folder is built under a temporary name and renamed into place, so an interrupted save
leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from . import __version__
from .atomic import atomic_path
from .errors import CheckpointError

FORMAT = 1  # bump when folders written by older versions can no longer be read
INDEX = "model_index.json"


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
    save_file(_tensors(state if state is not None else module.state_dict()), str(folder / "model.safetensors"))


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file; an unreadable one is a CheckpointError."""
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{path}: corrupt weights ({e})") from e


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
                 defaults: dict | None = None) -> Path:
    """A lean copy of the model folder `src` to ship or share: its components with floating-point
    weights stored in `dtype` (they load back into float32 modules), no training state, and its
    sampling defaults updated by `defaults` (e.g. {"steps": 8}); `dst` is written atomically and
    must be absent or empty. The defaults are checked by the Pipeline that first loads the copy."""
    src, dst = Path(src), Path(dst)
    index = read_index(src)
    with atomic_path(dst, folder=True) as tmp:
        for name in index["components"]:
            config = _read_json(src / name / "config.json", "component")
            weights = read_weights(src / name / "model.safetensors")
            (tmp / name).mkdir()
            _write_json(tmp / name / "config.json", config)
            save_file({k: v.to(dtype) if v.is_floating_point() else v for k, v in weights.items()},
                      str(tmp / name / "model.safetensors"))
        _write_json(tmp / INDEX, {**index, "defaults": {**index.get("defaults", {}), **(defaults or {})},
                                  "exported_dtype": str(dtype).removeprefix("torch.")})
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
    save_file(_tensors(tensors), str(folder / "state.safetensors"))
    _write_json(folder / "state.json", meta)


def read_state_meta(folder: str | Path) -> dict:
    """The JSON half of a training state (step, config, ...), without loading its tensors."""
    return _read_json(Path(folder) / "state.json", "training state")


def load_state(folder: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    folder = Path(folder)
    meta = read_state_meta(folder)
    try:
        return load_file(str(folder / "state.safetensors")), meta
    except (SafetensorError, OSError, FileNotFoundError) as e:
        raise CheckpointError(f"{folder}: corrupt training state ({e})") from e
