"""Training recipes: one dataclass, and named presets per component.

`tiny` trains in seconds (tests, smoke runs); `shapes-64` is the real recipe for 64x64,
17-frame clips at 8 fps on a 2-core CPU. A preset is a starting point: every field can be
overridden (`kinema train ... --set lr=3e-4`).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InputError
from .limits import MAX_BATCH_PIXELS, MAX_CLIP_TOKENS, MAX_PARAMS, MAX_PASS_FRAMES, SPATIAL, TEMPORAL

COMPONENTS = ("autoencoder", "transformer", "classifier")
SHIPPED = Path(__file__).resolve().parent / "assets" / "default"  # the model kinema ships (pipeline.DEFAULT_MODEL)

# Every numeric setting's valid range, checked where a config is made (presets, --set, a resumed
# run's state.json, Python): (low, high, low excluded). Floats must also be finite.
RANGES: dict[str, tuple] = {
    "frames": (1, MAX_PASS_FRAMES, False), "height": (8, 1024, False), "width": (8, 1024, False), "fps": (0.1, 240, False),
    "data_seed": (0, 2**31 - 1, False), "seed": (0, 2**31 - 1, False), "crop": (0, 1024, False),
    "anchor": (0, 1e6, False),
    "batch_size": (1, 4096, False), "lr": (0, 1, True), "weight_decay": (0, 10, False),
    "warmup_steps": (0, 10**9, False), "max_steps": (1, 10**9, False), "min_lr_ratio": (0, 1, False),
    "grad_clip": (0, 1e6, True), "ema_decay": (0, 0.999999, False), "caption_dropout": (0, 1, False),
    "latent_cache": (0, 10**7, False), "per_frame_t": (0, 1, False), "motion_weight": (0, 100, False),
    "sample_steps": (1, 1000, False), "sample_guidance": (0, 30, False), "log_every": (1, 10**9, False),
    "sample_every": (1, 10**9, False), "checkpoint_every": (1, 10**9, False),
    "checkpoint_minutes": (0, 10**6, True), "lora_rank": (0, 1024, False), "lora_alpha": (0, 10**6, False),
    "prior": (0, 0.9, False), "prior_clips": (1, 100_000, False), "repa": (0, 100, False),
    "repa_depth": (1, 256, False), "snapshot_every": (0, 10**9, False),
}
BOOLS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}


@dataclass
class TrainConfig:
    component: str
    model: dict = field(default_factory=dict)  # the component's config (AutoencoderConfig / TransformerConfig fields)
    # data (kinema.data.source): comma-separated sources, each "procedural", "natural" or a folder of
    # footage, with an optional ":WEIGHT" ("" = procedural); batch b on rank r reads stream positions
    # (b * world + r) * batch_size + j. `trigger` is put in front of every folder caption; `windows`
    # is how a folder's videos are cut into clips: head (the first), uniform (non-overlapping), sliding
    data: str = ""
    trigger: str = ""
    windows: str = "uniform"
    frames: int = 17
    height: int = 64
    width: int = 64
    fps: float = 8.0
    # transformer and autoencoder: "FRAMESxHEIGHTxWIDTH,..." shape buckets (e.g. "17x64x64,17x48x80,33x64x64");
    # step s trains on bucket s mod n, so every batch has one shape; "" = frames x height x width
    shapes: str = ""
    data_seed: int = 0
    crop: int = 0  # autoencoder only: >0 trains on random crop x crop windows (aligned to 8) of each clip
    # autoencoder only, with init: weight of a penalty keeping the encoder's latents of procedural
    # clips where the init model put them (in its normalised units), so a transformer trained on
    # the init model's latents still fits; the init model's latent statistics are kept too
    anchor: float = 0.0
    # autoencoder only, with init: train the decoder alone (Stable Diffusion's ft-MSE VAE recipe): the
    # encoder and the latent statistics stay the init model's exactly, so every transformer trained
    # on its latents still fits, and only what latents decode to improves
    decoder_only: bool = False
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
    # REPA (kinema.repa): weight of the alignment of the tokens after `repa_depth` blocks to the frozen
    # classifier's features of the clean clip (0 = off); procedural data, the projector is dropped on export
    repa: float = 0.0
    repa_depth: int = 2
    # {mode: weight}: condition masks drawn per sample (diffusion.masks: image, extend, interpolate,
    # keyframes, inpaint, text); empty = text-to-video only. --set condition_masks.image=0.2
    condition_masks: dict = field(default_factory=dict)
    # transformer only: lora_rank > 0 trains a LoRA adapter of that rank (PEFT, kinema.models.lora)
    # on the frozen init model instead of every weight; alpha 0 = the rank (scale 1); targets are
    # groups of layers: attn, cross, mlp, ada, final, embed
    lora_rank: int = 0
    # folder data only: this fraction of every batch is the base model's own (procedural) data with
    # its plain captions, `prior_clips` clips a shape encoded once into the disk cache: DreamBooth's
    # prior preservation, so prompts without the trigger keep what the base model made
    prior: float = 0.0
    prior_clips: int = 512
    lora_alpha: float = 0.0
    lora_targets: str = "attn,cross,mlp"
    sample_steps: int = 16
    sample_guidance: float = 4.0
    sample_guidance_interval: tuple = (0.0, 1.0)  # noise levels t where guidance applies (Pipeline defaults)
    # prompts of the transformer's sample sheets, separated by "|" ("" = kinema's shapes prompts, or
    # for folder data its first captions, with and without the trigger)
    sample_prompts: str = ""
    # bookkeeping
    log_every: int = 10
    sample_every: int = 500
    checkpoint_every: int = 200
    checkpoint_minutes: float = 10.0
    # >0: every this many steps also keep a lean float16 copy of the model in out/snapshots/step_N/
    # (kinema export's), with the training seconds so far: learning curves (benchmarks/learning_curve.py)
    snapshot_every: int = 0

    def __post_init__(self):
        self.check()

    def check(self) -> None:
        """Every setting in its valid range (RANGES and the rules below), or an InputError that
        names the setting, the range and the value."""
        if self.component not in COMPONENTS:
            raise InputError(f"unknown component '{self.component}'; choose one of {', '.join(COMPONENTS)}")
        types = {f.name: type(f.default) if f.default is not dataclasses.MISSING else None
                 for f in dataclasses.fields(self)}
        for name, (lo, hi, open_lo) in RANGES.items():
            value, kind = getattr(self, name), types[name]
            ok_type = (isinstance(value, int) and not isinstance(value, bool)) if kind is int else \
                (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value))
            what = "an integer" if kind is int else "a finite number"
            if not ok_type or not (lo < value if open_lo else lo <= value) or value > hi:
                raise InputError(f"training setting {name} must be {what} in {'(' if open_lo else '['}{lo}, {hi}], "
                                 f"got {value!r}")
        for name in ("compile", "augment", "decoder_only"):
            if not isinstance(getattr(self, name), bool):
                raise InputError(f"training setting {name} must be true or false, got {getattr(self, name)!r}")
        for name in ("init", "shapes", "data", "trigger", "windows", "lora_targets", "sample_prompts"):
            if not isinstance(getattr(self, name), str):
                raise InputError(f"training setting {name} must be text, got {getattr(self, name)!r}")
        from .data.source import WINDOWS, check_data
        if self.windows not in WINDOWS:
            raise InputError(f"training setting windows must be one of {', '.join(WINDOWS)}, got {self.windows!r}")
        check_data(self.data)
        if (self.frames - 1) % TEMPORAL:
            raise InputError(f"training setting frames must be 4k+1 (5, 9, 13, 17, ...), got {self.frames}")
        if self.lora_rank and self.component != "transformer":
            raise InputError("training setting lora_rank is the transformer's (kinema finetune)")
        if self.lora_rank and not self.init:
            raise InputError(f"training setting lora_rank={self.lora_rank} trains an adapter on a frozen model: "
                             f"give the model with --init (kinema finetune does)")
        if self.lora_rank:
            from .models.lora import target_pattern
            target_pattern(self.lora_targets)
        if self.decoder_only and (self.component != "autoencoder" or not self.init):
            raise InputError("training setting decoder_only trains an autoencoder's decoder on a frozen encoder: "
                             "it is the autoencoder's, and needs the model to start from (--init)")
        if self.decoder_only and self.anchor > 0:
            raise InputError("training settings decoder_only and anchor together: a frozen encoder keeps its "
                             "latents exactly, so anchor has nothing to do (set anchor=0)")
        if self.repa > 0 and (self.component != "transformer" or self.lora_rank):
            raise InputError("training setting repa aligns a transformer's tokens while all its weights train "
                             "(kinema train transformer, not a LoRA)")
        if self.anchor > 0 and self.component != "autoencoder":
            raise InputError("training setting anchor is the autoencoder's (it keeps the init model's latents)")
        if self.crop % SPATIAL:
            raise InputError(f"training setting crop must be a multiple of {SPATIAL} (0 = no crop), got {self.crop}")
        if self.component == "autoencoder" and self.crop > min(self.height, self.width):
            raise InputError(f"training setting crop ({self.crop}) must not exceed the clip ({self.height}x{self.width})")
        for name, pair, rule in (("betas", self.betas, lambda a, b: 0 <= a < 1 and 0 <= b < 1),
                                 ("sample_guidance_interval", self.sample_guidance_interval,
                                  lambda a, b: 0 <= a <= b <= 1)):
            if not (len(pair) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                           and math.isfinite(v) for v in pair) and rule(*pair)):
                raise InputError(f"training setting {name} must be two numbers "
                                 f"{'in [0, 1)' if name == 'betas' else 'LO, HI with 0 <= LO <= HI <= 1'}, got {pair}")
        from .diffusion.masks import check_weights
        check_weights(self.condition_masks)
        model = self.model_config()
        if self.repa > 0 and self.repa_depth > model.depth:
            raise InputError(f"training setting repa_depth ({self.repa_depth}) must be at most the transformer's "
                             f"depth ({model.depth}): it is the block whose tokens are aligned")
        shapes = parse_shapes(self.shapes, (self.frames, self.height, self.width), self.stride())
        side = (self.crop, self.crop) if self.component == "autoencoder" and self.crop else None
        pixels = max(self.batch_size * f * (side or (h, w))[0] * (side or (h, w))[1] for f, h, w in shapes)
        if pixels > MAX_BATCH_PIXELS:
            raise InputError(f"a batch of {self.batch_size} clips is {pixels:,} pixels, over the limit of "
                             f"{MAX_BATCH_PIXELS:,} a training step: lower batch_size (several processes under "
                             f"torchrun each take a batch) or the clip size")
        if self.component == "transformer":  # samples are generated at these shapes: the generation limits hold
            for f, h, w in shapes:
                tokens = (1 + (f - 1) // TEMPORAL) * (h // self.stride()) * (w // self.stride())
                if tokens > MAX_CLIP_TOKENS:
                    raise InputError(f"clip shape {f}x{h}x{w} makes {tokens:,} transformer tokens, over the limit of "
                                     f"{MAX_CLIP_TOKENS:,} a clip")
        self.check_size()

    def check_size(self) -> None:
        """Refuse a model over checkpoint.MAX_PARAMS before anything is allocated (counted on the
        meta device)."""
        from .checkpoint import count_params
        from .models.autoencoder import VideoAutoencoder
        from .models.classifier import VideoClassifier
        from .models.transformer import VideoTransformer
        build = {"autoencoder": VideoAutoencoder, "transformer": VideoTransformer, "classifier": VideoClassifier}
        n = count_params(build[self.component], self.model_config())
        if n > MAX_PARAMS:
            raise InputError(f"the {self.component} these model settings describe has {n:,} parameters, over "
                             f"kinema's limit of {MAX_PARAMS:,}")

    def model_config(self):
        """The component's model config (its own checks run), from `model` and the clip settings."""
        if not isinstance(self.model, dict):
            raise InputError(f"training setting model must be a mapping of model settings, got {self.model!r}")
        if self.component == "autoencoder":
            from .models.autoencoder import AutoencoderConfig
            return AutoencoderConfig.from_dict(self.model)
        if self.component == "transformer":
            from .models.text import MINILM_DIM
            from .models.transformer import TransformerConfig
            config = TransformerConfig.from_dict(self.model)
            if config.text_dim != MINILM_DIM:  # training reads the MiniLM text encoder's states
                raise InputError(f"model setting text_dim must be {MINILM_DIM}, the width of the MiniLM text "
                                 f"encoder's states, got {config.text_dim}")
            return config
        from .models.classifier import ClassifierConfig
        if self.height != self.width:
            raise InputError("the classifier trains on square clips (height = width)")
        return ClassifierConfig.from_dict({**self.model, "frames": self.frames, "size": self.height, "fps": self.fps})

    def stride(self) -> int:
        """What clip sides must be multiples of: the autoencoder's 8, times the transformer's patch."""
        return SPATIAL * (self.model_config().patch if self.component == "transformer" else 1)

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
                if not isinstance(d[key], (list, tuple)):
                    raise InputError(f"training setting {key} must be two numbers, got {d[key]!r}")
                d[key] = tuple(d[key])
        try:
            return cls(**d)
        except TypeError as e:  # a required field (component) missing
            raise InputError(f"incomplete training settings ({e})") from None

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
            if types[key] is bool:
                if value.strip().lower() not in BOOLS:
                    raise InputError(f"--set {key} must be true or false, got {value!r}")
                out[key] = BOOLS[value.strip().lower()]
                continue
            try:
                out[key] = types[key](value)
            except ValueError:
                kind = {int: "an integer", float: "a number"}.get(types[key], "text")
                raise InputError(f"--set {key} must be {kind}, got {value!r}") from None
        return TrainConfig.from_dict(out)


def parse_shapes(text: str, default: tuple[int, int, int], stride: int) -> list[tuple[int, int, int]]:
    """"17x64x64,17x48x80" -> [(17, 64, 64), (17, 48, 80)]; "" -> [default]. Frames must be 4k + 1
    and sides multiples of `stride` (the autoencoder's 8 times the transformer's patch); the
    default shape is checked too."""
    shapes = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            f, h, w = (int(n) for n in part.lower().split("x"))
        except ValueError:
            raise InputError(f"shapes: expected FRAMESxHEIGHTxWIDTH items like 17x64x64, got {part!r}") from None
        shapes.append((f, h, w))
    lo_f, hi_f = RANGES["frames"][:2]
    lo_s, hi_s = RANGES["height"][:2]
    for f, h, w in shapes or [default]:
        if not (lo_f <= f <= hi_f and (f - 1) % TEMPORAL == 0 and all(
                max(lo_s, stride) <= n <= hi_s and n % stride == 0 for n in (h, w))):
            raise InputError(f"clip shape {f}x{h}x{w} (training settings shapes, or frames x height x width) needs 4k+1 frames in [{lo_f}, {hi_f}] and sides that are "
                             f"multiples of {stride} in [{max(lo_s, stride)}, {hi_s}]"
                             + (" (8 x the transformer's patch)" if stride > SPATIAL else ""))
    return shapes or [default]


def _parse(value: str):
    """A model setting's value: JSON where it parses (1, 0.5, true, [1, 2]), else the string."""
    try:
        return json.loads(value)
    except (ValueError, RecursionError):  # RecursionError: absurdly nested brackets
        return value


# How often training draws each conditioning mode (diffusion.masks): text-to-video stays the most
# common task; image-to-video next, as it is the most used mode.
CONDITION_MASKS = {"text": 0.4, "image": 0.2, "extend": 0.15, "interpolate": 0.1, "keyframes": 0.05, "inpaint": 0.1}

# Settings of each preset; preset() makes (and so checks) a TrainConfig of them.
PRESETS: dict[tuple[str, str], dict] = {
    ("autoencoder", "tiny"): dict(
        component="autoencoder", model={"latent_channels": 8, "base_channels": 4},
        frames=5, height=16, width=16, batch_size=2, lr=2e-3, warmup_steps=5, max_steps=50,
        log_every=5, sample_every=25, checkpoint_every=25),
    # Trained on 9-frame clips (the causal model is local in time) and used on any 4k+1, on random
    # 32x32 crops (convolutions are local in space too): 16 clips of 32x32 beat 4 of 64x64 at the
    # same cost by ~4 dB at 200 steps. 16 latent channels, widths 16/32/64/128: 4.5M parameters,
    # ~0.2 s a step on 2 cores with bf16.
    ("autoencoder", "shapes-64"): dict(
        component="autoencoder", model={"latent_channels": 16, "base_channels": 16, "channel_mult": [1, 2, 4, 8]},
        frames=9, crop=32, batch_size=16, lr=2e-3, warmup_steps=100, max_steps=15_000, ema_decay=0.999,
        log_every=20, sample_every=1000, checkpoint_every=500),
    # The general-purpose autoencoder (issue 19): shapes-64's fine-tuned with --init on filmed
    # photographs and dead leaves (natural, 3 parts) and procedural clips (1 part), 9x48x48 whole
    # (the natural source renders views of any scale), anchored to the init model's latents of
    # procedural clips (anchor: the transformer trained on them still fits). ~1 s a step on 2
    # AVX2 cores (float32); docs/MODEL_CARD.md has the command and the measurements.
    ("autoencoder", "general-64"): dict(
        component="autoencoder", model={"latent_channels": 16, "base_channels": 16, "channel_mult": [1, 2, 4, 8]},
        data="natural:3,procedural:1", frames=9, height=48, width=48, batch_size=16, lr=1e-3, warmup_steps=50,
        max_steps=3600, ema_decay=0.999, anchor=0.1, log_every=20, sample_every=1000, checkpoint_every=500),
    # Its decoder alone (issue 19: real footage at 128x128, procedural clips as the transformer sees
    # them): the encoder and the latent statistics stay general-64's exactly, so the shipped
    # transformer needs nothing. Whole clips at two sizes in turn, not crops: the decoder's
    # GroupNorms see a whole frame's statistics, as they do in use.
    ("autoencoder", "general-decoder"): dict(
        component="autoencoder", model={"latent_channels": 16, "base_channels": 16, "channel_mult": [1, 2, 4, 8]},
        data="natural:1,procedural:1", frames=9, height=64, width=64, shapes="9x64x64,9x128x128", batch_size=8,
        lr=5e-4, warmup_steps=50, max_steps=2000, ema_decay=0.999, decoder_only=True, init=str(SHIPPED),
        log_every=20, sample_every=1000, checkpoint_every=250),
    ("transformer", "tiny"): dict(
        component="transformer", model={"latent_channels": 8, "patch": 1, "dim": 32, "depth": 2, "heads": 2, "freq_dim": 32},
        frames=5, height=16, width=16, batch_size=4, lr=2e-3, warmup_steps=5, max_steps=50,
        condition_masks=dict(CONDITION_MASKS), sample_steps=4, log_every=5, sample_every=25, checkpoint_every=25),
    # 64x64x17 -> latents 16x5x8x8 (channels follow the autoencoder) -> patch 2: 80 tokens;
    # 12.1M parameters, ~0.19 s a step on 2 cores with bf16, explicit attention and compile
    # (22k steps: ~75 minutes). The loss is weighted towards what moves (motion_weight): without
    # it objects came out still; with half the steps they moved the prompted way a third of the time (README).
    ("transformer", "shapes-64"): dict(
        component="transformer", model={"latent_channels": 16, "patch": 2, "dim": 256, "depth": 8, "heads": 4},
        batch_size=16, lr=5e-4, warmup_steps=200, max_steps=22_000, ema_decay=0.999, latent_cache=8000,
        motion_weight=3.0, compile=True, condition_masks=dict(CONDITION_MASKS),
        log_every=10, sample_every=1000, checkpoint_every=100),
    # The shipped default model (kinema/assets/default): shapes-64's model on shape buckets of the
    # same pixel count (64x64, 48x80, 80x48; 17 and 33 frames), 64x64x17 twice as often. Shipped as
    # a fine-tune of a shapes-64 run (docs/MODEL_CARD.md gives the commands: --init).
    ("transformer", "default"): dict(
        component="transformer", model={"latent_channels": 16, "patch": 2, "dim": 256, "depth": 8, "heads": 4},
        shapes="17x64x64,17x48x80,17x64x64,17x80x48,33x64x64",
        batch_size=16, lr=2e-4, warmup_steps=200, max_steps=16_000, ema_decay=0.999, latent_cache=8000,
        motion_weight=3.0, compile=True, condition_masks=dict(CONDITION_MASKS), sample_steps=8,
        log_every=10, sample_every=2000, checkpoint_every=100),
    ("classifier", "tiny"): dict(
        component="classifier", model={"widths": [16, 32, 64], "groups": 4},
        frames=5, height=32, width=32, batch_size=16, lr=3e-3, warmup_steps=5, max_steps=60, ema_decay=0.9,
        log_every=5, sample_every=1000, checkpoint_every=1000),
    # Stage 1 of the shipped classifier (per-cell readout): 861k parameters, ~0.43 s a step on 2
    # cores (32 clips rendered on the fly, bf16): 12k steps ~ 90 min. Stage 2: shapes-64-objects.
    ("classifier", "shapes-64"): dict(
        component="classifier", model={"widths": [32, 64, 128, 256], "readout": "cells"},
        batch_size=32, lr=2e-3, weight_decay=0.05, warmup_steps=200, max_steps=12_000, ema_decay=0.999,
        augment=True,  # compile=True gave NaN gradients here (torch 2.13 inductor, CPU): eager
        log_every=20, sample_every=1000, checkpoint_every=500),
    # Stage 2 of the shipped classifier: object queries read the sets, on the trunk of a stage-1
    # (shapes-64) classifier given with --init (the readout starts fresh); ~60 min. From scratch the
    # object readout learned far slower than per-cell heads (README).
    ("classifier", "shapes-64-objects"): dict(
        component="classifier", model={"widths": [32, 64, 128, 256], "readout": "objects"},
        batch_size=32, lr=1e-3, weight_decay=0.05, warmup_steps=200, max_steps=8_000, ema_decay=0.999,
        augment=True, log_every=20, sample_every=500, checkpoint_every=250),
}


def preset(component: str, name: str) -> TrainConfig:
    if component not in COMPONENTS:
        raise InputError(f"unknown component '{component}'; choose one of {', '.join(COMPONENTS)}")
    if (component, name) not in PRESETS:
        names = sorted(n for c, n in PRESETS if c == component)
        raise InputError(f"unknown preset '{name}' for {component}; choose one of {', '.join(names)}")
    return TrainConfig(**copy.deepcopy(PRESETS[(component, name)]))
