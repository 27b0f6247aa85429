"""What each component trains on and how: the part of training that differs per component.

A Task builds its model, reads batch `step` (deterministic: the step number is the data
position), computes the loss, draws a sample grid, and names the components a checkpoint holds.
The loop in train.py does everything else.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from .atomic import atomic_path
from .checkpoint import read_index, weights_digest
from .data.cache import DiskCache, entry_key
from .config import TrainConfig, parse_shapes
from .data.source import Mixture, Shape
from .data.synthetic import SyntheticClips
from .diffusion import masks
from .diffusion.flow import add_noise, drop_captions, flow_loss, motion_weight, sample_training_t
from .errors import CheckpointError, InputError
from .models import classifier
from .models.autoencoder import AutoencoderConfig, VideoAutoencoder
from .models.classifier import ClassifierConfig, VideoClassifier
from .models.text import load_text_encoder
from .models.transformer import TransformerConfig, VideoTransformer
from .pipeline import SPATIAL, Pipeline, load_autoencoder
from .runtime import autocast, bf16_fast
from .video import Video
from .viz import contact_sheet

SAMPLE_PROMPTS = [
    "a red circle moves left", "a blue square moves right", "a green triangle moves up",
    "a yellow star moves down", "a magenta ring bounces", "a cyan square spins",
    "a large red star grows", "a small blue circle stays still, the camera zooms in",
]


def _clip_batch(data: Mixture, shape: Shape, step: int, rank: int, world: int, size: int, offset: int = 0):
    """Batch `step` of this rank: stream positions offset + (step * world + rank) * size + j."""
    first = offset + (step * world + rank) * size
    batch = [data.clip(shape, first + j) for j in range(size)]
    video = torch.stack([c.video.to_tensor() for c in batch])
    return video, [c.caption for c in batch], batch


class Task:
    """What the loop asks of every component; the defaults do nothing."""

    def after_resume(self, out: Path) -> None:
        """Called once the run's state is loaded (or not, for a fresh run): e.g. build caches."""

    def prepare(self, model):
        """The model to train, after the init model's weights are loaded (e.g. a LoRA attached)."""
        return model

    def extra(self, model, step: int) -> dict:
        """Further sub-folders of a checkpoint: {name: writer(folder)}."""
        return {}

    def stats(self) -> dict:
        """Figures for the run's summary."""
        return {}


class AutoencoderTask(Task):
    def __init__(self, cfg: TrainConfig, data: Mixture, device: torch.device, **_):
        self.cfg, self.data, self.device = cfg, data, device
        self.shape = (cfg.frames, cfg.height, cfg.width)
        self.shapes = parse_shapes(cfg.shapes, self.shape, SPATIAL)  # step s trains on shapes[s mod n]
        self.model = VideoAutoencoder(AutoencoderConfig.from_dict(cfg.model))
        held = SyntheticClips("heldout", cfg.data_seed, cfg.frames, cfg.height, cfg.width, cfg.fps)
        self.heldout = torch.stack([held[i].video.to_tensor() for i in range(4)])
        self.teacher = None
        if cfg.anchor > 0:  # the init model, frozen: where procedural clips' latents stay
            if not cfg.init:
                raise InputError(f"training setting anchor={cfg.anchor:g} keeps the latents of the model training "
                                 f"starts from: give one with --init (e.g. --init kinema/assets/default)")
            from .train import init_from
            self.teacher = VideoAutoencoder(AutoencoderConfig.from_dict(cfg.model))
            if init_from(self.teacher, cfg.init, "autoencoder"):
                raise InputError(f"training setting anchor keeps the latents of {cfg.init}, but its autoencoder "
                                 f"lacks parts of this one: anchor only to a model of the same sizes")
            self.teacher.requires_grad_(False).eval().to(device)

    def prepare(self, model):
        if self.cfg.decoder_only:  # the encoder (and with it the latent statistics) stays the init model's
            for part in (model.encoder, model.enc_out, model.to_moments):
                part.requires_grad_(False)
        return model

    def batch(self, step: int, rank: int, world: int):
        shape = self.shapes[step % len(self.shapes)]
        video, _, clips = _clip_batch(self.data, shape, step, rank, world, self.cfg.batch_size)
        x = random_crops(video, self.cfg.crop, seed=(self.cfg.seed * 1_000_003 + step) * 64 + rank).to(self.device)
        procedural = torch.tensor(["objects" in c.attributes for c in clips], device=self.device)
        return x, procedural

    def loss(self, model, batch, gen):
        x, procedural = batch
        anchor = None
        if self.teacher is not None:
            with torch.no_grad():
                target = self.teacher.encode(x[procedural]) if procedural.any() else None
            anchor = (target, procedural, self.cfg.anchor)
        loss, parts = model(x, gen, anchor)  # forward() is the loss, so DDP sees the call
        return loss, {k: float(v) for k, v in parts.items()}

    @torch.no_grad()
    def sample(self, model, path: Path) -> None:
        x = self.heldout.to(self.device)
        rec = model.decode(model.encode(x)).clamp(-1, 1)
        videos = [Video.from_tensor(v, self.cfg.fps) for pair in zip(x, rec) for v in pair]
        caps = [s for i in range(len(x)) for s in (f"held-out clip {i}", f"reconstruction (PSNR {psnr_db(x[i], rec[i]):.1f} dB)")]
        path.parent.mkdir(parents=True, exist_ok=True)
        Video(contact_sheet(videos, caps)).save(path)

    @torch.no_grad()
    def components(self, model):
        # per-channel latent statistics from a fixed batch, so latents enter the transformer ~N(0, 1)
        if self.teacher is not None:  # anchored to the init model's latents: its statistics too
            model.latent_mean.copy_(self.teacher.latent_mean)
            model.latent_std.copy_(self.teacher.latent_std)
        elif not self.cfg.decoder_only:  # (a frozen encoder keeps the init model's statistics as loaded)
            x = torch.stack([self.data.clip(self.shape, 10_000_000 + i).video.to_tensor() for i in range(16)])
            model.set_latent_stats(model.encode(x.to(self.device), normalize=False))
        return {"autoencoder": (model, model.config.to_dict())}

    def index(self) -> dict:
        return {"autoencoder": "autoencoder"}


def shape_name(shape: tuple[int, int, int]) -> str:
    """(17, 48, 80) -> "17x48x80", the form parse_shapes reads."""
    return "x".join(map(str, shape))


def random_crops(video: torch.Tensor, size: int, seed: int) -> torch.Tensor:
    """A size x size window of each clip of (B, C, T, H, W), at offsets that are multiples of 8
    drawn from `seed` (so a resumed run reads the same crops). size 0 or >= the frame: no crop."""
    B, _, _, H, W = video.shape
    if size <= 0 or (size >= H and size >= W):
        return video
    if size % 8 or size > min(H, W):
        raise InputError(f"crop must be a multiple of 8 no larger than the frame ({H}x{W}), got {size}")
    gen = torch.Generator().manual_seed(seed)
    ys = torch.randint(0, (H - size) // 8 + 1, (B,), generator=gen) * 8
    xs = torch.randint(0, (W - size) // 8 + 1, (B,), generator=gen) * 8
    return torch.stack([v[..., y:y + size, x:x + size] for v, y, x in zip(video, ys.tolist(), xs.tolist())])


def psnr_db(x: torch.Tensor, y: torch.Tensor) -> float:
    """PSNR of two videos in [-1, 1] (peak-to-peak 2)."""
    mse = ((x.float() - y.float()) ** 2).mean().item()
    return 99.0 if mse == 0 else 10 * np.log10(4.0 / mse)


class TransformerTask(Task):
    """The video transformer on latents of the training data: procedural (encoded on the fly, or
    `latent_cache` clips once), or a folder of footage, each clip encoded once into the disk cache
    (kinema.data.cache) and read back by every later run. With `lora_rank`, a LoRA adapter on the
    frozen init model is what trains (kinema finetune)."""

    def __init__(self, cfg: TrainConfig, data: Mixture, device: torch.device, autoencoder=None, cache=None,
                 progress: bool = True, **_):
        if autoencoder is None:
            raise InputError("training a transformer needs --autoencoder DIR (a folder from "
                             "`kinema train autoencoder`)")
        self.cfg, self.data, self.device = cfg, data, device
        self.ae = load_autoencoder(autoencoder).to(device).eval().requires_grad_(False)
        self.text = load_text_encoder("minilm").to(device)
        self.align = None  # REPA's frozen target encoder (kinema.repa), when cfg.repa > 0
        if cfg.repa > 0:
            from .repa import Targets
            self.align = Targets(device=device)
        model_cfg = TransformerConfig.from_dict({**cfg.model, "latent_channels": self.ae.config.latent_channels,
                                                 **({"align_dim": self.align.dim, "align_depth": cfg.repa_depth}
                                                    if self.align else {})})
        self.model = VideoTransformer(model_cfg)
        self.aligned = {}  # shape -> cached REPA targets of the latent cache's clips
        masks.check_weights(cfg.condition_masks)
        self.shapes = parse_shapes(cfg.shapes, (cfg.frames, cfg.height, cfg.width), SPATIAL * model_cfg.patch)
        # one clip stream per shape, the k-th read from position k * 10^7 on so the shapes show other scenes
        self.offsets = {sh: k * 10_000_000 for k, sh in enumerate(dict.fromkeys(self.shapes))}
        self.cache, self._perm = {}, {}
        self.store = DiskCache(cache)
        self.lora, self.base = None, None  # LoRA config and the base model's digest (lora_rank > 0)
        self.progress = progress
        self.encoded = 0  # folder clips encoded by this run (the rest came from the disk cache)
        # finite data (folders): the shapes that have clips, drawn in proportion to their clips
        self.finite = all(data.count(sh) is not None for sh in self.offsets)
        if self.finite:
            counts = {sh: data.count(sh) for sh in self.offsets}
            self.shapes = [sh for sh, n in counts.items() if n]
            if not self.shapes:
                raise InputError(f"no training data has clips of {', '.join(map(shape_name, counts))} "
                                 f"(frames x height x width)")
            self._deck = _deck([counts[sh] for sh in self.shapes], cfg.seed)
        # prior preservation: the last prior_n clips of every batch are the base model's own data
        self.prior_n = min(cfg.batch_size - 1, max(1, round(cfg.prior * cfg.batch_size))) if cfg.prior > 0 else 0
        if self.prior_n and not self.finite:
            raise InputError("training setting prior mixes the base model's data into fine-tuning on a folder of "
                             "footage; this run's data is procedural already")
        if self.align is not None and self.finite:
            raise InputError("training setting repa needs kinema's procedural (or natural) data, whose clips the "
                             "classifier's features describe; a folder of footage trains without it")
        if cfg.prior > 0 and cfg.batch_size < 2:
            raise InputError(f"training setting prior={cfg.prior} needs a batch of at least 2 clips")
        self.prior = {}

    # -- the model: the init model's weights are loaded by the loop before prepare()
    def prepare(self, model):
        if not self.cfg.lora_rank:
            return model
        from .models import lora
        self.base = lora.base_digest(model)
        self.lora = lora.lora_config(model, self.cfg.lora_rank, self.cfg.lora_alpha, self.cfg.lora_targets)
        model.requires_grad_(False)
        lora.attach(model, self.lora)
        if bf16_fast(self.device):  # the frozen base in the compute dtype: half the memory, no casts
            for m in model.modules():
                if isinstance(m, torch.nn.Linear) and not m.weight.requires_grad:
                    m.to(torch.bfloat16)
        return model

    def extra(self, model, step: int) -> dict:
        if self.lora is None:
            return {}
        from .models import lora
        meta = {"base_digest": self.base, "base_model": self.cfg.init, "trigger": self.cfg.trigger, "steps": step,
                "rank": self.cfg.lora_rank, "targets": self.cfg.lora_targets}
        return {"adapter": lambda d: lora.write_adapter(d, self.lora, lora.adapter_state(model, "default"), meta)}

    # -- data: clips -> latents, optionally precomputed once
    def after_resume(self, out: Path) -> None:
        if self.lora is not None and (out / "model" / "model_index.json").is_file():
            before = read_index(out / "model").get("lora", {}).get("base_digest")
            if before not in (None, self.base):
                raise CheckpointError(f"{out} trained an adapter on another base model (transformer {before}); "
                                      f"{self.cfg.init} is now {self.base}: resume with the model it started from")
        if self.finite:
            self.cache = {sh: self._folder_latents(sh) for sh in self.shapes}
            if self.prior_n:
                self.prior = {sh: self._prior_latents(sh) for sh in self.shapes}
            self._text_states([c for _, caps in [*self.cache.values(), *self.prior.values()] for c in caps]
                              + [""] + self.prompts())
        elif self.cfg.latent_cache > 0:
            single = len(self.offsets) == 1  # one shape: cache/ as before; several: cache/FxHxW/
            self.cache = {sh: self._latent_cache(out / "cache" if single else out / "cache" / shape_name(sh),
                                                 self.cfg.latent_cache, sh) for sh in self.offsets}
            # keep every cached caption's text states after their first use (~50 KB each)
            self.text.cache_size = max(self.text.cache_size, len(self.offsets) * self.cfg.latent_cache + 1)

    def _folder_latents(self, shape: Shape):
        """Every clip of `shape` in the (finite) data, from the disk cache, encoding what it lacks."""
        ae = _weights_digest(self.ae)
        refs = [(s, i) for s, _ in self.data.parts for i in range(s.count(shape) or 0)]
        keys = [entry_key("latents", ae, s.clip_key(shape, i)) for s, i in refs]
        latents = [self.store.get("latents", k) for k in keys]
        todo = [j for j, t in enumerate(latents) if t is None]
        for start in tqdm(range(0, len(todo), 16), desc=f"encoding {shape_name(shape)} clips", unit="batch",
                          disable=not (todo and self.progress)):
            batch = todo[start:start + 16]
            x = torch.stack([refs[j][0].clip(shape, refs[j][1]).video.to_tensor() for j in batch]).to(self.device)
            with torch.no_grad(), autocast(self.device):
                z = self.ae.encode(x).half().cpu()
            for j, zj in zip(batch, z):
                latents[j] = {"latents": zj.clone()}
                self.store.put("latents", keys[j], latents[j])
        self.encoded += len(todo)
        captions = [s.caption(shape, i) for s, i in refs]
        return torch.stack([t["latents"] for t in latents]), captions

    def _prior_latents(self, shape: Shape):
        """`prior_clips` procedural clips of `shape` (the base model's training data, plain captions),
        from the disk cache, encoding what it lacks."""
        from .data.synthetic import DATASET_VERSION
        n, ae = self.cfg.prior_clips, _weights_digest(self.ae)
        clips = SyntheticClips("train", self.cfg.data_seed, *shape, fps=self.cfg.fps)
        keys = [entry_key("prior", ae, {"procedural": DATASET_VERSION, "seed": self.cfg.data_seed, "index": i,
                                          "shape": list(shape), "fps": self.cfg.fps}) for i in range(n)]
        got = [self.store.get("prior", k) for k in keys]
        todo = [i for i, g in enumerate(got) if g is None]
        for start in tqdm(range(0, len(todo), 16), desc=f"encoding {shape_name(shape)} prior clips", unit="batch",
                          disable=not (todo and self.progress)):
            batch = [clips[i] for i in todo[start:start + 16]]
            x = torch.stack([c.video.to_tensor() for c in batch]).to(self.device)
            with torch.no_grad(), autocast(self.device):
                z = self.ae.encode(x).half().cpu()
            for i, c, zi in zip(todo[start:start + 16], batch, z):
                got[i] = {"latents": zi.clone(), "caption": torch.tensor(list(c.caption.encode()), dtype=torch.uint8)}
                self.store.put("prior", keys[i], got[i])
        return torch.stack([g["latents"] for g in got]), [bytes(g["caption"].tolist()).decode() for g in got]

    def stats(self) -> dict:
        if not self.finite:
            return {}
        return {"clips": sum(len(c) for _, c in self.cache.values()), "encoded": self.encoded,
                "cache": str(self.store.root)}

    def _text_states(self, captions: list[str]) -> None:
        """The text encoder's states of `captions` from the disk cache (encoding what it lacks), kept in memory."""
        captions = list(dict.fromkeys(captions))
        digest = _weights_digest(self.text)
        self.text.cache_size = max(self.text.cache_size, len(captions) + 1)
        for c in captions:
            key = entry_key("text", digest, c)
            hit = self.store.get("text", key)
            if hit is None:
                states, mask = self.text.encode([c])
                hit = {"states": states[0, mask[0]].cpu()}
                self.store.put("text", key, hit)
            self.text.remember(c, hit["states"])

    def prompts(self) -> list[str]:
        """The sample sheet's prompts: sample_prompts, or the data's first captions (with and
        without the trigger) for folder data, or kinema's shapes prompts."""
        if self.cfg.sample_prompts.strip():
            return [p.strip() for p in self.cfg.sample_prompts.split("|")]
        if not self.finite or not self.cache:
            return SAMPLE_PROMPTS
        captions = list(dict.fromkeys(c for _, caps in self.cache.values() for c in caps))[:4]
        trigger = self.cfg.trigger.strip()
        bare = [c[len(trigger):].lstrip(" ,") if trigger and c.startswith(trigger) else c for c in captions]
        return captions + ([b for b in bare if b not in captions] if trigger else [])

    def batch(self, step: int, rank: int, world: int):
        size = self.cfg.batch_size
        # folder data: this shape's n-th batch, walking its own shuffled stream; else shapes take turns
        shape, nth = self._deck_at(step) if self.finite else (self.shapes[step % len(self.shapes)], step)
        if shape not in self.cache:
            video, captions, _ = _clip_batch(self.data, shape, step, rank, world, size, self.offsets[shape])
            with torch.no_grad(), autocast(self.device):
                video = video.to(self.device)
                targets = self.align(video, self.model.config.patch) if self.align else None
                return self.ae.encode(video).float(), captions, targets
        latents, captions = self.cache[shape]
        own = size - self.prior_n
        first = (nth * world + rank) * own
        idx = [self._shuffled(shape, p, len(captions)) for p in range(first, first + own)]
        x, text = latents[idx].float(), [captions[i] for i in idx]
        if self.prior_n:
            z, caps = self.prior[shape]
            first = (nth * world + rank) * self.prior_n
            pi = [self._shuffled(shape, p, len(caps), salt=1) for p in range(first, first + self.prior_n)]
            x, text = torch.cat([x, z[pi].float()]), text + [caps[i] for i in pi]
        targets = self.aligned[shape][idx].to(self.device) if self.align else None
        return x.to(self.device), text, targets

    def _deck_at(self, step: int) -> tuple[Shape, int]:
        """The shape of batch `step` (finite data) and how many batches of it came before."""
        deck, (laps, k) = self._deck, divmod(step, len(self._deck))
        i = deck[k]
        return self.shapes[i], laps * deck.count(i) + deck[:k].count(i)

    def _latent_cache(self, folder: Path, n: int, shape: tuple[int, int, int]):
        (frames, height, width), first = shape, self.offsets[shape]
        patch = self.model.config.patch
        key = {"n": n, "data": self.data.identity(), "frames": frames, "height": height,
               "width": width, "fps": self.cfg.fps,
               "autoencoder": _weights_digest(self.ae), **({"first": first} if first else {}),
               **({"align": self.align.digest(), "patch": patch} if self.align else {})}
        meta_path, data_path = folder / "latents.json", folder / "latents.safetensors"
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() and data_path.is_file() else {}
        if meta.get("key") == key:
            stored = load_file(str(data_path))
            if self.align:
                self.aligned[shape] = stored["align"]
            return stored["latents"], meta["captions"]
        folder.mkdir(parents=True, exist_ok=True)
        latents, captions, aligned = [], [], []
        for start in tqdm(range(0, n, 32), desc=f"encoding latent cache {shape_name(shape)}", unit="batch",
                          disable=not self.progress):
            clips = [self.data.clip(shape, first + i) for i in range(start, min(n, start + 32))]
            x = torch.stack([c.video.to_tensor() for c in clips]).to(self.device)
            with torch.no_grad(), autocast(self.device):
                latents.append(self.ae.encode(x).half().cpu())
                if self.align:
                    aligned.append(self.align(x, patch).cpu())
            captions += [c.caption for c in clips]
        latents = torch.cat(latents)
        stored = {"latents": latents}
        if self.align:
            self.aligned[shape] = stored["align"] = torch.cat(aligned)
        with atomic_path(data_path) as tmp:
            save_file(stored, str(tmp))
        with atomic_path(meta_path) as tmp:
            tmp.write_text(json.dumps({"key": key, "captions": captions}))
        return latents, captions

    def _shuffled(self, shape: tuple, position: int, n: int, salt: int = 0) -> int:
        """Cache index at stream `position`: a fresh permutation of the shape's cache every epoch
        (`salt` 1: the prior clips' stream)."""
        epoch, k = divmod(position, n)
        key = (shape, salt)
        if self._perm.get(key, (-1,))[0] != epoch:
            seed = self.cfg.seed * 7919 + epoch + 104_729 * self.shapes.index(shape) + 15_485_863 * salt
            self._perm[key] = (epoch, torch.randperm(n, generator=torch.Generator().manual_seed(seed)))
        return int(self._perm[key][1][k])

    def loss(self, model, batch, gen):
        x0, captions, targets = batch
        states, mask = self.text.encode(drop_captions(captions, self.cfg.caption_dropout, gen))
        B, _, T, H, W = x0.shape
        tokens = T * H * W // self.model.config.patch ** 2
        t = sample_training_t(B, T, tokens, gen)
        if self.cfg.per_frame_t > 0:  # some samples get a noise level per frame (diffusion forcing)
            mixed = torch.rand(B, 1, generator=gen) < self.cfg.per_frame_t
            t = torch.where(mixed, sample_training_t(B, T, tokens, gen, per_frame=True), t)
        t = t.to(x0.device)
        noise = torch.randn(x0.shape, generator=gen).to(x0.device)
        x_t = add_noise(x0, noise, t)
        clean, generated = None, None
        weights = self.cfg.condition_masks
        if T == 1:  # a still: only text and inpainting leave something to generate
            weights = {m: w for m, w in weights.items() if m in ("text", "inpaint")}
            weights = weights if sum(weights.values()) > 0 else {}
        if weights:  # condition tokens enter clean, at t = 0, and are left out of the loss
            p = self.model.config.patch
            clean = masks.sample_masks(B, T, H // p, W // p, weights, gen)[0].to(x0.device)
            given = masks.to_latent(clean, p)
            x_t, generated = torch.where(given[:, None], x0, x_t), ~given
        weight = motion_weight(x0, self.cfg.motion_weight) if self.cfg.motion_weight > 0 and T > 1 else None
        if targets is None:
            return flow_loss(model(x_t, t, states, mask, clean), x0, noise, loss_mask=generated, weight=weight), {}
        from . import repa
        pred, projected = model(x_t, t, states, mask, clean, align=True)
        flow, align = flow_loss(pred, x0, noise, loss_mask=generated, weight=weight), repa.loss(projected, targets)
        return flow + self.cfg.repa * align, {"flow": float(flow.detach()), "repa": float(align.detach())}

    @torch.no_grad()
    def sample(self, model, path: Path) -> None:
        cfg, prompts = self.cfg, self.prompts()
        frames, height, width = self._sample_shape()
        pipe = Pipeline(self.ae, model, self.text, defaults=self.index()["defaults"])
        videos = pipe.generate(prompts, frames=frames, height=height, width=width,
                               steps=cfg.sample_steps, guidance=cfg.sample_guidance, seed=0, progress=False,
                               watermark=False)
        path.parent.mkdir(parents=True, exist_ok=True)
        Video(contact_sheet(videos, prompts)).save(path)

    def _sample_shape(self) -> Shape:
        """Samples at the recipe's shape, or for folder data at its most common video shape."""
        if not self.finite or not self.cache:
            return self.cfg.frames, self.cfg.height, self.cfg.width
        videos = [sh for sh in self.shapes if sh[0] > 1] or self.shapes
        return max(videos, key=lambda sh: len(self.cache[sh][1]))

    def components(self, model):
        if self.lora is not None:  # the adapter is written by extra(); the base stays where it is
            return {}
        return {"transformer": (model, model.config.to_dict()), "autoencoder": (self.ae, self.ae.config.to_dict())}

    def index(self) -> dict:
        c = self.cfg
        out = {"text_encoder": "minilm", "defaults": {"frames": c.frames, "height": c.height, "width": c.width,
                                                      "fps": c.fps, "steps": c.sample_steps,
                                                      "guidance": c.sample_guidance,
                                                      "guidance_interval": list(c.sample_guidance_interval)},
               "trained_shapes": [shape_name(sh) for sh in self.offsets]}
        if self.lora is not None:
            out["lora"] = {"adapter": "adapter", "base_model": c.init, "base_digest": self.base}
        return out


def _deck(counts: list[int], seed: int, size: int = 64) -> list[int]:
    """A shuffled cycle of shape indices, each about in proportion to its clips (at least once)."""
    total = sum(counts)
    deck = [i for i, n in enumerate(counts) for _ in range(max(1, round(size * n / total)))]
    order = torch.randperm(len(deck), generator=torch.Generator().manual_seed(seed * 31 + 7))
    return [deck[int(j)] for j in order]


class ClassifierTask(Task):
    """The video classifier on clips of the training split, read back on held-out clips and on
    the compositions split at every sample step (samples/step_N.json holds the accuracies).
    With `augment`, hue turns show it the compositions' colour/shape pairs too (classifier.augment)."""

    def __init__(self, cfg: TrainConfig, data: Mixture, device: torch.device, **_):
        self.cfg, self.data, self.device = cfg, data, device
        self.shape = (cfg.frames, cfg.height, cfg.width)
        self.model = VideoClassifier(ClassifierConfig.from_dict(
            {**cfg.model, "frames": cfg.frames, "size": cfg.height, "fps": cfg.fps}))
        if cfg.height != cfg.width:
            raise InputError("the classifier trains on square clips (height = width)")

    def batch(self, step: int, rank: int, world: int):
        first = (step * world + rank) * self.cfg.batch_size
        clips = _clip_batch(self.data, self.shape, step, rank, world, self.cfg.batch_size)[2]
        unlabelled = [c for c in clips if "objects" not in c.attributes]
        if unlabelled:
            raise InputError("the classifier trains on clips labelled with kinema's attributes: procedural data "
                             "only (--data procedural); a clip of "
                             f"{unlabelled[0].attributes.get('file', 'the data')} has none")
        pairs = [(c.video.to_tensor(), c.attributes) for c in clips]
        if self.cfg.augment:  # a pure function of the clip index, so a resumed run sees the same batches
            rng = np.random.default_rng([self.cfg.seed, first])
            pairs = [classifier.augment(v, a, int(rng.integers(3)), bool(rng.integers(2))) for v, a in pairs]
        video = torch.stack([v for v, _ in pairs]).to(self.device)
        return video, classifier.targets([a for _, a in pairs])

    def loss(self, model, batch, gen):
        x, target = batch
        loss, parts = classifier.loss(model(x), target)
        return loss, {k: v.item() for k, v in parts.items()}

    @torch.no_grad()
    def evaluate(self, model, split: str, n: int) -> dict[str, float]:
        """Per-attribute accuracy on the first n clips of a split."""
        clips = SyntheticClips(split, self.cfg.data_seed, self.cfg.frames, self.cfg.height, self.cfg.width, self.cfg.fps)
        with autocast(self.device):
            logits, attrs = classifier.read_clips(model, clips, n, device=self.device)
        return classifier.accuracy(logits, classifier.targets(attrs))

    @torch.no_grad()
    def sample(self, model, path: Path) -> None:
        model.eval()
        acc = {split: self.evaluate(model, split, 128) for split in ("heldout", "compositions")}
        held = SyntheticClips("heldout", self.cfg.data_seed, self.cfg.frames, self.cfg.height, self.cfg.width, self.cfg.fps)
        clips = [held[i] for i in range(6)]
        logits = model(torch.stack([c.video.to_tensor() for c in clips]).to(self.device))
        readings = model.read(logits)
        objects = classifier.read_objects(logits["objects"]) if "objects" in logits else [None] * len(clips)
        model.train()
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path.with_suffix(".json")) as tmp:
            tmp.write_text(json.dumps(acc, indent=1))
        caps = [f"{c.caption}  ->  {classifier.describe(r, o)}" for c, r, o in zip(clips, readings, objects)]
        Video(contact_sheet([c.video for c in clips], caps)).save(path)

    def components(self, model):
        return {"classifier": (model, model.config.to_dict())}

    def index(self) -> dict:
        return {}


def _weights_digest(model: torch.nn.Module) -> str:
    """A short hash of a model's weights: cached latents are only valid for the encoder that made them."""
    return weights_digest(model.state_dict())


TASKS = {"autoencoder": AutoencoderTask, "transformer": TransformerTask, "classifier": ClassifierTask}
