"""LoRA adapters on the video transformer, through PEFT.

An adapter is a folder that PEFT itself reads (`PeftModel.from_pretrained(transformer, folder)`):

    adapter/
      adapter_config.json         PEFT's LoraConfig: rank, alpha, the target modules
      adapter_model.safetensors   the low-rank weights, named as PeftModel.save_pretrained names them
      kinema_adapter.json         the base model it was trained on (a hash of its transformer's
                                  weights), its trigger word and training steps
      checksums.sha256

kinema injects adapters into its own transformer in place (`peft.inject_adapter_in_model`), so
the pipeline keeps calling the same module; several adapters can be active at once, each with
its own scale, and fused into the base weights (`fuse`) for sampling at the base model's speed.
A fresh adapter (PEFT starts B at zero) and any adapter at scale 0 add exactly zero: the base
model's output, bit for bit.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
import torch.nn as nn

from .. import __version__
from ..atomic import atomic_path
from ..checkpoint import read_weights, weights_digest, write_weights
from ..errors import CheckpointError, InputError

CONFIG, WEIGHTS, META = "adapter_config.json", "adapter_model.safetensors", "kinema_adapter.json"
PREFIX = "base_model.model."  # how PeftModel.save_pretrained names weights: PEFT loads ours as its own
# target groups of --lora-targets -> the transformer's module names (a regex PEFT full-matches)
TARGETS = {
    "attn": r"blocks\.\d+\.attn\.(q|kv|out)",   # self-attention projections
    "cross": r"blocks\.\d+\.cross\.(q|kv|out)",  # cross-attention to the text
    "mlp": r"blocks\.\d+\.mlp\.(0|2)",          # the feed-forward layers
    "ada": r"blocks\.\d+\.ada\.1",              # adaLN modulation (timestep and pooled text)
    "final": r"final|final_ada\.1",             # the output projection and its modulation
    "embed": r"patch_embed|time_embed\.(0|2)|text_embed\.(0|2)",
}
DEFAULT_TARGETS = "attn,cross,mlp"
MAX_RANK = 1024


def target_pattern(spec: str) -> str:
    """--lora-targets (comma-separated groups of TARGETS) as the regex PEFT matches module names with."""
    groups = [g.strip() for g in str(spec or DEFAULT_TARGETS).split(",") if g.strip()]
    unknown = [g for g in groups if g not in TARGETS]
    if unknown or not groups:
        raise InputError(f"LoRA targets must be a comma-separated list of {', '.join(TARGETS)}, got {spec!r}")
    return "|".join(f"({TARGETS[g]})" for g in dict.fromkeys(groups))


def lora_config(model: nn.Module, rank: int, alpha: float | None = None, targets: str = DEFAULT_TARGETS):
    """PEFT's LoraConfig for `model`, every value checked: the rank from 1 to the narrowest
    targeted layer's width (a wider one adds nothing a full update would not), alpha > 0."""
    from peft import LoraConfig
    pattern = target_pattern(targets)
    layers = {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear) and re.fullmatch(pattern, n)}
    if not layers:
        raise InputError(f"LoRA targets {targets!r} match no layer of this transformer")
    width = min(min(m.in_features, m.out_features) for m in layers.values())
    if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= min(width, MAX_RANK):
        raise InputError(f"LoRA rank must be a whole number from 1 to {min(width, MAX_RANK)} (the narrowest "
                         f"targeted layer's width), got {rank!r}")
    alpha = float(rank if alpha is None or alpha == 0 else alpha)
    if not (alpha > 0 and alpha < 1e6):
        raise InputError(f"LoRA alpha must be a positive number (the update is scaled by alpha / rank), got {alpha!r}")
    return LoraConfig(r=rank, lora_alpha=alpha, target_modules=pattern, lora_dropout=0.0, bias="none")


def _tuner_layers(model: nn.Module):
    from peft.tuners.tuners_utils import BaseTunerLayer
    return [m for m in model.modules() if isinstance(m, BaseTunerLayer)]


def adapters(model: nn.Module) -> list[str]:
    """Names of the adapters injected into `model`, in the order they were added."""
    names: dict[str, None] = {}
    for layer in _tuner_layers(model):
        names.update(dict.fromkeys(layer.lora_A.keys()))
    return list(names)


def attach(model: nn.Module, config, name: str = "default") -> None:
    """Inject a fresh adapter `name` into `model` (in place) and make it active beside any others;
    only adapter weights require grad afterwards."""
    from peft import inject_adapter_in_model
    if name in adapters(model):
        raise InputError(f"an adapter named {name!r} is already loaded")
    active = [*adapters(model), name]
    inject_adapter_in_model(config, model, adapter_name=name)
    set_active(model, active)


def set_active(model: nn.Module, names: list[str]) -> None:
    for layer in _tuner_layers(model):
        layer.set_adapter([n for n in names if n in layer.lora_A])


def set_scale(model: nn.Module, name: str, scale: float) -> None:
    """The adapter's update times `scale` (1: as trained; 0: none)."""
    for layer in _tuner_layers(model):
        layer.set_scale(name, float(scale))


def fuse(model: nn.Module, names: list[str]) -> None:
    """Add the adapters' updates (at their scales) into the base weights: sampling then runs at the
    base model's speed. `unfuse` takes them out again (up to float rounding)."""
    for layer in _tuner_layers(model):
        layer.merge(adapter_names=[n for n in names if n in layer.lora_A])


def unfuse(model: nn.Module) -> None:
    for layer in _tuner_layers(model):
        while layer.merged:
            layer.unmerge()


def remove(model: nn.Module, name: str) -> None:
    unfuse(model)
    for layer in _tuner_layers(model):
        if name in layer.lora_A:
            layer.delete_adapter(name)


def base_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The base model's weights under their own names (PEFT's `.base_layer` folded away, adapters
    left out): what a model folder holds, and what `base_digest` hashes."""
    return {k.replace(".base_layer.", "."): v for k, v in model.state_dict().items() if ".lora_" not in k}


def base_digest(model: nn.Module) -> str:
    """A hash of the base transformer's weights: adapters record it, and load only onto it."""
    return weights_digest(dict(sorted(base_state(model).items())))


def adapter_state(model: nn.Module, name: str) -> dict[str, torch.Tensor]:
    """Adapter `name`'s weights, named as PEFT names them in its files."""
    from peft import get_peft_model_state_dict
    return {PREFIX + k: v.detach().float().cpu().contiguous() for k, v in
            get_peft_model_state_dict(model, adapter_name=name).items()}


def write_adapter(folder: Path, config, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Write an adapter folder's files into `folder` (an atomic folder being built: see `save_adapter`)."""
    config.save_pretrained(str(folder))
    write_weights(folder / WEIGHTS, tensors)
    (folder / META).write_text(json.dumps({"kinema_version": __version__, **meta}, indent=2, sort_keys=True) + "\n")


def save_adapter(path: str | Path, model: nn.Module, config, name: str, meta: dict) -> Path:
    """Atomically write adapter `name` of `model` as a folder at `path` (replacing one there)."""
    path = Path(path)
    with atomic_path(path, folder=True, replace=True) as tmp:
        tmp.mkdir(parents=True, exist_ok=True)
        write_adapter(tmp, config, adapter_state(model, name), meta)
    return path


def adapter_folder(path: str | Path) -> Path:
    """The adapter folder at `path`: itself, or the adapter of a fine-tuning run or its model folder."""
    path = Path(path)
    for folder in (path, path / "adapter", path / "model" / "adapter"):
        if (folder / CONFIG).is_file():
            return folder
    if path.is_dir() and ((path / "model_index.json").is_file() or (path / "model" / "model_index.json").is_file()):
        raise CheckpointError(f"{path}: a full model, not a LoRA adapter (a full fine-tune is loaded with "
                              f"--model {path})")
    raise CheckpointError(f"{path}: not a LoRA adapter (no {CONFIG} there, nor in {path}/adapter or "
                          f"{path}/model/adapter)")


def read_adapter(path: str | Path):
    """(LoraConfig, {PEFT's name: tensor}, kinema meta) of the adapter at `path`, every part checked."""
    from peft import LoraConfig
    folder = adapter_folder(path)
    try:
        config = LoraConfig.from_pretrained(str(folder))
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as e:
        raise CheckpointError(f"{folder / CONFIG}: not a readable LoRA config ({str(e).splitlines()[0]})") from e
    if getattr(config, "peft_type", None) is None or str(config.peft_type).split(".")[-1] != "LORA":
        raise CheckpointError(f"{folder}: a {config.peft_type} adapter; kinema loads LoRA adapters")
    if not isinstance(config.r, int) or not 1 <= config.r <= MAX_RANK or not config.lora_alpha > 0:
        raise CheckpointError(f"{folder / CONFIG}: rank {config.r!r} / alpha {config.lora_alpha!r} out of range")
    try:
        meta = json.loads((folder / META).read_text()) if (folder / META).is_file() else {}
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{folder / META}: corrupt ({e})") from e
    if not isinstance(meta, dict):
        raise CheckpointError(f"{folder / META}: corrupt (expected a JSON object)")
    tensors = read_weights(folder / WEIGHTS)
    bad = [k for k, v in tensors.items() if not k.startswith(PREFIX) or ".lora_" not in k
           or v.ndim != 2 or not v.is_floating_point() or not torch.isfinite(v).all()]
    if bad or not tensors:
        raise CheckpointError(f"{folder / WEIGHTS}: not LoRA weights (e.g. {bad[0] if bad else 'no tensors'})")
    return config, tensors, meta


def load_adapter(model: nn.Module, path: str | Path, name: str, scale: float = 1.0,
                 digest: str | None = None) -> dict:
    """Inject the adapter at `path` into `model` as `name` at `scale`, beside any loaded before.
    `digest`: the base model's `base_digest`; an adapter recorded for another base is refused.
    Returns its kinema meta."""
    from peft import inject_adapter_in_model, set_peft_model_state_dict
    config, tensors, meta = read_adapter(path)
    folder = adapter_folder(path)
    base = meta.get("base_digest")
    if digest is not None and base is not None and base != digest:
        raise CheckpointError(f"{folder} was trained on another base model (transformer {base}, from "
                              f"{meta.get('base_model', 'an unknown folder')}); this model's transformer is "
                              f"{digest}: load it with the model it was trained on (--model)")
    if name in adapters(model):
        raise InputError(f"an adapter named {name!r} is already loaded")
    active = [*adapters(model), name]
    state = {k[len(PREFIX):]: v for k, v in tensors.items()}
    try:
        inject_adapter_in_model(config, model, adapter_name=name)
        result = set_peft_model_state_dict(model, state, adapter_name=name)
    except (RuntimeError, ValueError, KeyError) as e:  # shapes of another model
        remove(model, name)
        raise CheckpointError(f"{folder}: does not fit this transformer ({str(e).splitlines()[0]})") from e
    unexpected = list(getattr(result, "unexpected_keys", []) or [])
    missing = [k for k in getattr(result, "missing_keys", []) or [] if f".{name}." in k and ".lora_" in k]
    if unexpected or missing:
        remove(model, name)
        raise CheckpointError(f"{folder}: does not fit this transformer ({len(unexpected)} weights it does not "
                              f"have, {len(missing)} missing, e.g. {(unexpected or missing)[0]})")
    set_active(model, active)
    set_scale(model, name, scale)
    return meta


def merge(model, loras: list[tuple[str, float]], out: str | Path, dtype: torch.dtype = torch.float16,
          defaults: dict | None = None) -> Path:
    """A standalone model folder at `out`: the base model with adapters merged into its
    transformer's weights. `model` is a LoRA fine-tuning run (its adapter is merged, onto its base)
    or a model folder (None: the shipped one); `loras` are further (path, scale) to merge."""
    from ..checkpoint import export_model, read_index
    from ..pipeline import Pipeline, _model_path, lora_base
    folder = _model_path(model)
    base = lora_base(folder, read_index(folder))
    todo = ([(str(folder), 1.0)] if base is not None else []) + [(str(p), float(s)) for p, s in loras]
    if not todo:
        raise InputError(f"--merge-lora: nothing to merge ({folder} is not a LoRA fine-tuning run, and no --lora "
                         f"was given)")
    pipe = Pipeline.from_folder(base or folder, "cpu")
    for path, scale in todo:
        pipe.load_lora(path, scale)
    pipe.fuse_lora()
    merged = [{"path": v["path"], "scale": v["scale"], "trigger": v["trigger"]} for v in pipe.loras.values()]
    return export_model(base or folder, out, dtype, defaults, weights={"transformer": base_state(pipe.transformer)},
                        note={"merged_loras": merged})


def adapter_name(path: str | Path, taken: list[str]) -> str:
    """A name for the adapter at `path` (its run's name, as a Python identifier), unique among `taken`."""
    p = Path(path).resolve()
    stem = p.parent.name if p.name in ("adapter", "model") else p.name
    if stem == "model":
        stem = p.parent.parent.name
    base = re.sub(r"\W", "_", stem).strip("_") or "lora"
    base = base if not base[0].isdigit() else f"lora_{base}"
    name, k = base, 2
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    return name


def parse_lora(spec: str) -> tuple[str, float]:
    """--lora PATH[:SCALE] -> (path, scale); a PATH that exists as given wins over a colon in it."""
    if not spec:
        raise InputError("--lora needs a path: an adapter folder or a fine-tuning run, e.g. --lora runs/style:0.8")
    path, sep, tail = spec.rpartition(":")
    if not sep or Path(spec).exists():
        return spec, 1.0
    try:
        scale = float(tail)
    except ValueError:
        raise InputError(f"--lora {spec}: the scale after ':' must be a number, e.g. {path}:0.8, got {tail!r}") from None
    if not -10 <= scale <= 10:
        raise InputError(f"--lora {spec}: scale must be in [-10, 10], got {scale:g}")
    return path, scale
