"""Fine-tune a model on a folder of footage: a LoRA adapter (PEFT) or every weight.

    kinema finetune my_clips/ --out runs/style --trigger "in kinema-studio style"
    kinema generate "in kinema-studio style, a red car" --lora runs/style
    kinema export runs/style --merge-lora --out my_model

    import kinema
    kinema.finetune("my_clips/", "runs/style", trigger="in kinema-studio style")

This is `kinema train transformer` with a recipe made from the base model's own: its transformer
sizes, shape buckets (plus 1-frame buckets, so photos train as stills), fps, condition masks
(every mode keeps working) and sampling defaults; the base model is the init, its autoencoder
encodes the footage (once: latents and text states are kept in the disk cache). With a LoRA rank
only the adapter trains, the base frozen; `full=True` trains every weight. The run folder is a
training run like any other: loss.png, samples/ (the validation prompts, with and without the
trigger, at fixed seeds), exact resume.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .checkpoint import read_index
from .config import CONDITION_MASKS, TrainConfig
from .errors import InputError
from .models.lora import DEFAULT_TARGETS, lora_config
from .models.transformer import VideoTransformer
from .pipeline import _model_path, model_folder, trained_sizes
from .train import stored_config, train

LORA_RECIPE = dict(lr=3e-4, weight_decay=0.0)
PRIOR = 0.25  # of every batch: the base model's own data, so prompts without the trigger keep their look
FULL_RECIPE = dict(lr=5e-5, weight_decay=0.0)


def recipe(base: str | Path | None, data: list[str], *, lora_rank: int = 16, lora_alpha: float | None = None,
           lora_targets: str = DEFAULT_TARGETS, full: bool = False, trigger: str = "", windows: str = "uniform",
           max_steps: int = 1000, batch_size: int = 8, lr: float | None = None, prompts: list[str] | None = None,
           validate_every: int = 250, prior: float = PRIOR) -> TrainConfig:
    """The fine-tuning recipe for the model at `base` (None: the shipped one) on `data` (folders,
    each optionally FOLDER:WEIGHT, or 'procedural' to keep some of the base data in the mix)."""
    folder = _model_path(base)
    index = read_index(folder)
    if "lora" in index:
        raise InputError(f"{folder} is a LoRA run: fine-tune its base model, or merge it first "
                         f"(kinema export {folder} --merge-lora --out DIR)")
    from .pipeline import model_spec
    defaults, _ = model_spec(folder)
    old = (index.get("recipe") or {}).get("config") or {}
    model = dict(old.get("model") or {})
    model.update({k: v for k, v in json.loads((folder / "transformer" / "config.json").read_text()).items()
                  if not k.startswith("_")})
    shapes = [s for s in index.get("trained_shapes") or [] if isinstance(s, str)] or \
        [f"{defaults.get('frames', 17)}x{defaults.get('height', 64)}x{defaults.get('width', 64)}"]
    stills = [f"1x{h}x{w}" for h, w in trained_sizes(index) or [(defaults.get("height", 64), defaults.get("width", 64))]]
    if not data:
        raise InputError("fine-tuning needs data: a folder of videos and images (see `kinema dataset scan`)")
    if isinstance(prompts, str):
        prompts = [prompts]
    if any("|" in p for p in prompts or []):
        raise InputError("a validation prompt cannot contain '|'")
    cfg = dict(
        component="transformer", model=model, data=",".join(data), trigger=trigger, windows=windows,
        frames=int(defaults.get("frames", 17)), height=int(defaults.get("height", 64)),
        width=int(defaults.get("width", 64)), fps=float(defaults.get("fps", 8.0)),
        shapes=",".join(dict.fromkeys(shapes + stills)), batch_size=batch_size, warmup_steps=min(50, max_steps // 10),
        max_steps=max_steps, ema_decay=0.995, init=str(folder.resolve()),
        motion_weight=float(old.get("motion_weight", 3.0)),
        condition_masks=dict(old.get("condition_masks") or CONDITION_MASKS),
        caption_dropout=float(old.get("caption_dropout", 0.1)),
        sample_steps=int(defaults.get("steps", 8)), sample_guidance=float(defaults.get("guidance", 4.0)),
        sample_guidance_interval=tuple(defaults.get("guidance_interval", (0.0, 1.0))),
        sample_prompts="|".join(prompts or []), sample_every=validate_every, checkpoint_every=100,
        log_every=10, **(FULL_RECIPE if full else LORA_RECIPE),
        lora_rank=0 if full else lora_rank, lora_alpha=0.0 if full or lora_alpha is None else float(lora_alpha),
        lora_targets=lora_targets, prior=prior if batch_size >= 2 else 0.0,  # (a batch of 1 has no room for it)
    )
    if lr is not None:
        cfg["lr"] = lr
    cfg = TrainConfig.from_dict(cfg)
    if not full:  # the rank, alpha and targets checked against the model's layers before any footage is read
        with torch.device("meta"):
            lora_config(VideoTransformer(cfg.model_config()), lora_rank, lora_alpha, lora_targets)
    return cfg


def finetune(data: str | Path | list, out: str | Path, *, model: str | Path | None = None, lora_rank: int = 16,
             lora_alpha: float | None = None, lora_targets: str = DEFAULT_TARGETS, full: bool = False,
             trigger: str = "", windows: str = "uniform", max_steps: int | None = None,
             max_minutes: float | None = None, resume: bool = False, batch_size: int = 8, lr: float | None = None,
             prompts: list[str] | None = None, validate_every: int = 250, settings: list[str] = (),
             cache: str | Path | None = None, prior: float = PRIOR, progress: bool = True) -> dict:
    """Fine-tune `model` (None: the shipped one) on `data` into the run folder `out`; returns the
    run's summary (`kinema.train.train`). `resume=True` continues the run in `out` with its own
    recipe (`settings`, KEY=VALUE strings as `--set`, still apply). `prior`: the fraction of every
    batch drawn from the base model's own training data with plain captions (prior preservation:
    0 trains on the footage alone, and prompts without the trigger drift toward it too)."""
    data = [str(d) for d in (data if isinstance(data, (list, tuple)) else [data])]
    stored = stored_config(out) if resume else None
    if stored is not None:
        cfg = stored
    else:
        if resume:
            raise InputError(f"{out}: nothing to resume (no model/train_state folder)")
        cfg = recipe(model, data, lora_rank=lora_rank, lora_alpha=lora_alpha, lora_targets=lora_targets, full=full,
                     trigger=trigger, windows=windows, max_steps=max_steps or 1000, batch_size=batch_size, lr=lr,
                     prompts=prompts, validate_every=validate_every, prior=prior)
    cfg = cfg.override(list(settings)) if settings else cfg
    return train("transformer", cfg, out, max_steps=max_steps, max_minutes=max_minutes, resume=resume,
                 autoencoder=model_folder(cfg.init), progress=progress, cache=cache)
