"""Training recipes: one dataclass, and named presets per component.

`tiny` trains in seconds (tests, smoke runs); `shapes-64` is the real recipe for 64x64,
17-frame clips at 8 fps on a 2-core CPU. A preset is a starting point: every field can be
overridden (`kinema train ... --set lr=3e-4`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

from .errors import InputError

COMPONENTS = ("autoencoder", "transformer", "classifier")


@dataclass
class TrainConfig:
    component: str
    model: dict = field(default_factory=dict)  # the component's config (AutoencoderConfig / TransformerConfig fields)
    # data: clips of the procedural dataset, batch b on rank r reads indices (b * world + r) * batch_size + j
    frames: int = 17
    height: int = 64
    width: int = 64
    fps: float = 8.0
    # transformer only: "FRAMESxHEIGHTxWIDTH,..." shape buckets (e.g. "17x64x64,17x48x80,33x64x64");
    # step s trains on bucket s mod n, so every batch has one shape; "" = frames x height x width
    shapes: str = ""
    data_seed: int = 0
    crop: int = 0  # autoencoder only: >0 trains on random crop x crop windows (aligned to 8) of each clip
    augment: bool = False  # classifier only: random hue turns and mirroring, labels to match (classifier.augment)
    # optimisation
    batch_size: int = 8
    lr: float = 3e-4
    weight_decay: float = 0.0
    betas: tuple = (0.9, 0.99)
    warmup_steps: int = 100
    max_steps: int = 10_000  # also the length of the cosine schedule
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    seed: int = 0
    compile: bool = False  # torch.compile the training forward (inductor; ~1 min to compile, then faster steps)
    init: str = ""  # start from this model folder's weights for the component (fine-tuning); "" = from scratch
    # transformer only
    caption_dropout: float = 0.1
    latent_cache: int = 0  # >0: encode this many clips once and train on their cached latents
    per_frame_t: float = 0.0  # fraction of samples whose latent frames get independent noise levels
    motion_weight: float = 0.0  # >0: weight the loss towards positions that change over time (flow.motion_weight)
    # {mode: weight}: condition masks drawn per sample (diffusion.masks: image, extend, interpolate,
    # keyframes, inpaint, text); empty = text-to-video only. --set condition_masks.image=0.2
    condition_masks: dict = field(default_factory=dict)
    sample_steps: int = 16
    sample_guidance: float = 4.0
    sample_guidance_interval: tuple = (0.0, 1.0)  # noise levels t where guidance applies (Pipeline defaults)
    # bookkeeping
    log_every: int = 10
    sample_every: int = 500
    checkpoint_every: int = 200
    checkpoint_minutes: float = 10.0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise InputError(f"unknown training settings: {', '.join(sorted(unknown))}")
        d = dict(d)
        for key in ("betas", "sample_guidance_interval"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)

    def override(self, assignments: list[str]) -> "TrainConfig":
        """Apply `key=value` strings (values parsed as the field's type)."""
        out = self.to_dict()
        types = {f.name: type(getattr(self, f.name)) for f in dataclasses.fields(self)}
        for a in assignments:
            key, sep, value = a.partition("=")
            head, dot, sub = key.partition(".")
            if dot and sep and types.get(head) is dict:  # model.dim=384, condition_masks.image=0.2
                out[head] = {**out[head], sub: _parse(value)}
                continue
            if not sep or key not in types or types[key] in (dict, tuple):
                raise InputError(f"--set expects key=value with a scalar setting, or model.KEY=VALUE or "
                                 f"condition_masks.MODE=WEIGHT, got {a!r}; settings: "
                                 f"{', '.join(k for k, t in types.items() if t not in (dict, tuple))}")
            try:
                out[key] = (value.lower() in ("1", "true", "yes")) if types[key] is bool else types[key](value)
            except ValueError as e:
                raise InputError(f"--set {key}: {e}") from e
        return TrainConfig.from_dict(out)


def _parse(value: str):
    """A model setting's value: JSON where it parses (1, 0.5, true, [1, 2]), else the string."""
    try:
        return json.loads(value)
    except ValueError:
        return value


# How often training draws each conditioning mode (diffusion.masks): text-to-video stays the most
# common task; image-to-video next, as it is the most used mode.
CONDITION_MASKS = {"text": 0.4, "image": 0.2, "extend": 0.15, "interpolate": 0.1, "keyframes": 0.05, "inpaint": 0.1}

PRESETS: dict[tuple[str, str], TrainConfig] = {
    ("autoencoder", "tiny"): TrainConfig(
        "autoencoder", model={"latent_channels": 8, "base_channels": 4},
        frames=5, height=16, width=16, batch_size=2, lr=2e-3, warmup_steps=5, max_steps=50,
        log_every=5, sample_every=25, checkpoint_every=25),
    # Trained on 9-frame clips (the causal model is local in time) and used on any 4k+1, on random
    # 32x32 crops (convolutions are local in space too): 16 clips of 32x32 beat 4 of 64x64 at the
    # same cost by ~4 dB at 200 steps. 16 latent channels, widths 16/32/64/128: 4.5M parameters,
    # ~0.2 s a step on 2 cores with bf16.
    ("autoencoder", "shapes-64"): TrainConfig(
        "autoencoder", model={"latent_channels": 16, "base_channels": 16, "channel_mult": [1, 2, 4, 8]},
        frames=9, crop=32, batch_size=16, lr=2e-3, warmup_steps=100, max_steps=15_000, ema_decay=0.999,
        log_every=20, sample_every=1000, checkpoint_every=500),
    ("transformer", "tiny"): TrainConfig(
        "transformer", model={"latent_channels": 8, "patch": 1, "dim": 32, "depth": 2, "heads": 2, "freq_dim": 32},
        frames=5, height=16, width=16, batch_size=4, lr=2e-3, warmup_steps=5, max_steps=50,
        condition_masks=dict(CONDITION_MASKS), sample_steps=4, log_every=5, sample_every=25, checkpoint_every=25),
    # 64x64x17 -> latents 16x5x8x8 (channels follow the autoencoder) -> patch 2: 80 tokens;
    # 12.1M parameters, ~0.19 s a step on 2 cores with bf16, explicit attention and compile
    # (22k steps: ~75 minutes). The loss is weighted towards what moves (motion_weight): without
    # it objects came out still; with half the steps they moved the prompted way a third of the time (README).
    ("transformer", "shapes-64"): TrainConfig(
        "transformer", model={"latent_channels": 16, "patch": 2, "dim": 256, "depth": 8, "heads": 4},
        batch_size=16, lr=5e-4, warmup_steps=200, max_steps=22_000, ema_decay=0.999, latent_cache=8000,
        motion_weight=3.0, compile=True, condition_masks=dict(CONDITION_MASKS),
        log_every=10, sample_every=1000, checkpoint_every=100),
    # The shipped default model (kinema/assets/default): shapes-64's model on shape buckets of the
    # same pixel count (64x64, 48x80, 80x48; 17 and 33 frames), 64x64x17 twice as often. Shipped as
    # a fine-tune of a shapes-64 run (docs/MODEL_CARD.md gives the commands: --init).
    ("transformer", "default"): TrainConfig(
        "transformer", model={"latent_channels": 16, "patch": 2, "dim": 256, "depth": 8, "heads": 4},
        shapes="17x64x64,17x48x80,17x64x64,17x80x48,33x64x64",
        batch_size=16, lr=2e-4, warmup_steps=200, max_steps=16_000, ema_decay=0.999, latent_cache=8000,
        motion_weight=3.0, compile=True, condition_masks=dict(CONDITION_MASKS), sample_steps=8,
        log_every=10, sample_every=2000, checkpoint_every=100),
    ("classifier", "tiny"): TrainConfig(
        "classifier", model={"widths": [16, 32, 64], "groups": 4},
        frames=5, height=32, width=32, batch_size=16, lr=3e-3, warmup_steps=5, max_steps=60, ema_decay=0.9,
        log_every=5, sample_every=1000, checkpoint_every=1000),
    # Stage 1 of the shipped classifier (per-cell readout): 861k parameters, ~0.43 s a step on 2
    # cores (32 clips rendered on the fly, bf16): 12k steps ~ 90 min. Stage 2: shapes-64-objects.
    ("classifier", "shapes-64"): TrainConfig(
        "classifier", model={"widths": [32, 64, 128, 256], "readout": "cells"},
        batch_size=32, lr=2e-3, weight_decay=0.05, warmup_steps=200, max_steps=12_000, ema_decay=0.999,
        augment=True,  # compile=True gave NaN gradients here (torch 2.13 inductor, CPU): eager
        log_every=20, sample_every=1000, checkpoint_every=500),
    # Stage 2 of the shipped classifier: object queries read the sets, on the trunk of a stage-1
    # (shapes-64) classifier given with --init (the readout starts fresh); ~60 min. From scratch the
    # object readout learned far slower than per-cell heads (README).
    ("classifier", "shapes-64-objects"): TrainConfig(
        "classifier", model={"widths": [32, 64, 128, 256], "readout": "objects"},
        batch_size=32, lr=1e-3, weight_decay=0.05, warmup_steps=200, max_steps=8_000, ema_decay=0.999,
        augment=True, log_every=20, sample_every=500, checkpoint_every=250),
}


def preset(component: str, name: str) -> TrainConfig:
    if component not in COMPONENTS:
        raise InputError(f"unknown component '{component}'; choose one of {', '.join(COMPONENTS)}")
    if (component, name) not in PRESETS:
        names = sorted(n for c, n in PRESETS if c == component)
        raise InputError(f"unknown preset '{name}' for {component}; choose one of {', '.join(names)}")
    return dataclasses.replace(PRESETS[(component, name)])
