"""What each component trains on and how: the part of training that differs per component.

A Task builds its model, reads batch `step` (deterministic: the step number is the data
position), computes the loss, draws a sample grid, and names the components a checkpoint holds.
The loop in train.py does everything else.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from .atomic import atomic_path
from .config import TrainConfig, parse_shapes
from .data.source import Mixture, Shape
from .data.synthetic import SyntheticClips
from .diffusion import masks
from .diffusion.flow import add_noise, drop_captions, flow_loss, motion_weight, sample_training_t
from .errors import InputError
from .models import classifier
from .models.autoencoder import AutoencoderConfig, VideoAutoencoder
from .models.classifier import ClassifierConfig, VideoClassifier
from .models.text import load_text_encoder
from .models.transformer import TransformerConfig, VideoTransformer
from .pipeline import SPATIAL, Pipeline, load_autoencoder
from .runtime import autocast
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


class AutoencoderTask:
    def __init__(self, cfg: TrainConfig, data: Mixture, device: torch.device, **_):
        self.cfg, self.data, self.device = cfg, data, device
        self.shape = (cfg.frames, cfg.height, cfg.width)
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

    def after_resume(self, out: Path) -> None:
        pass

    def batch(self, step: int, rank: int, world: int):
        video, _, clips = _clip_batch(self.data, self.shape, step, rank, world, self.cfg.batch_size)
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
        else:
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


class TransformerTask:
    def __init__(self, cfg: TrainConfig, data: Mixture, device: torch.device, autoencoder=None, **_):
        if autoencoder is None:
            raise InputError("training a transformer needs --autoencoder DIR (a folder from "
                             "`kinema train autoencoder`)")
        self.cfg, self.data, self.device = cfg, data, device
        self.ae = load_autoencoder(autoencoder).to(device).eval().requires_grad_(False)
        self.text = load_text_encoder("minilm").to(device)
        model_cfg = TransformerConfig.from_dict({**cfg.model, "latent_channels": self.ae.config.latent_channels})
        self.model = VideoTransformer(model_cfg)
        masks.check_weights(cfg.condition_masks)
        self.shapes = parse_shapes(cfg.shapes, (cfg.frames, cfg.height, cfg.width), SPATIAL * model_cfg.patch)
        # one clip stream per shape, the k-th read from position k * 10^7 on so the shapes show other scenes
        self.offsets = {sh: k * 10_000_000 for k, sh in enumerate(dict.fromkeys(self.shapes))}
        self.cache, self._perm = {}, {}

    # -- data: clips -> latents, optionally precomputed once
    def after_resume(self, out: Path) -> None:
        if self.cfg.latent_cache > 0:
            single = len(self.offsets) == 1  # one shape: cache/ as before; several: cache/FxHxW/
            self.cache = {sh: self._latent_cache(out / "cache" if single else out / "cache" / shape_name(sh),
                                                 self.cfg.latent_cache, sh) for sh in self.offsets}
            # keep every cached caption's text states after their first use (~50 KB each)
            self.text.cache_size = max(self.text.cache_size, len(self.offsets) * self.cfg.latent_cache + 1)

    def _latent_cache(self, folder: Path, n: int, shape: tuple[int, int, int]):
        (frames, height, width), first = shape, self.offsets[shape]
        count = self.data.count(shape)
        if count is not None:  # finite data (a folder): each clip once, not latent_cache draws of a few
            n, first = min(n, count), 0
        key = {"n": n, "data": self.data.identity(), "frames": frames, "height": height,
               "width": width, "fps": self.cfg.fps,
               "autoencoder": _weights_digest(self.ae), **({"first": first} if first else {})}
        meta_path, data_path = folder / "latents.json", folder / "latents.safetensors"
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() and data_path.is_file() else {}
        if meta.get("key") == key:
            return load_file(str(data_path))["latents"], meta["captions"]
        folder.mkdir(parents=True, exist_ok=True)
        latents, captions = [], []
        for start in tqdm(range(0, n, 32), desc=f"encoding latent cache {shape_name(shape)}", unit="batch"):
            clips = [self.data.clip(shape, first + i) for i in range(start, min(n, start + 32))]
            x = torch.stack([c.video.to_tensor() for c in clips]).to(self.device)
            with torch.no_grad(), autocast(self.device):
                latents.append(self.ae.encode(x).half().cpu())
            captions += [c.caption for c in clips]
        latents = torch.cat(latents)
        with atomic_path(data_path) as tmp:
            save_file({"latents": latents}, str(tmp))
        with atomic_path(meta_path) as tmp:
            tmp.write_text(json.dumps({"key": key, "captions": captions}))
        return latents, captions

    def batch(self, step: int, rank: int, world: int):
        size, shape = self.cfg.batch_size, self.shapes[step % len(self.shapes)]
        if shape not in self.cache:
            video, captions, _ = _clip_batch(self.data, shape, step, rank, world, size, self.offsets[shape])
            with torch.no_grad(), autocast(self.device):
                return self.ae.encode(video.to(self.device)).float(), captions
        latents, captions = self.cache[shape]
        first = (step * world + rank) * size
        idx = [self._shuffled(shape, p, len(captions)) for p in range(first, first + size)]
        return latents[idx].float().to(self.device), [captions[i] for i in idx]

    def _shuffled(self, shape: tuple, position: int, n: int) -> int:
        """Cache index at stream `position`: a fresh permutation of the shape's cache every epoch."""
        epoch, k = divmod(position, n)
        if self._perm.get(shape, (-1,))[0] != epoch:
            seed = self.cfg.seed * 7919 + epoch + 104_729 * self.shapes.index(shape)
            self._perm[shape] = (epoch, torch.randperm(n, generator=torch.Generator().manual_seed(seed)))
        return int(self._perm[shape][1][k])

    def loss(self, model, batch, gen):
        x0, captions = batch
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
        if self.cfg.condition_masks:  # condition tokens enter clean, at t = 0, and are left out of the loss
            p = self.model.config.patch
            clean = masks.sample_masks(B, T, H // p, W // p, self.cfg.condition_masks, gen)[0].to(x0.device)
            given = masks.to_latent(clean, p)
            x_t, generated = torch.where(given[:, None], x0, x_t), ~given
        pred = model(x_t, t, states, mask, clean)
        weight = motion_weight(x0, self.cfg.motion_weight) if self.cfg.motion_weight > 0 else None
        return flow_loss(pred, x0, noise, loss_mask=generated, weight=weight), {}

    @torch.no_grad()
    def sample(self, model, path: Path) -> None:
        cfg = self.cfg
        pipe = Pipeline(self.ae, model, self.text, defaults=self.index()["defaults"])
        videos = pipe.generate(SAMPLE_PROMPTS, frames=cfg.frames, height=cfg.height, width=cfg.width,
                               steps=cfg.sample_steps, guidance=cfg.sample_guidance, seed=0, progress=False)
        path.parent.mkdir(parents=True, exist_ok=True)
        Video(contact_sheet(videos, SAMPLE_PROMPTS)).save(path)

    def components(self, model):
        return {"transformer": (model, model.config.to_dict()), "autoencoder": (self.ae, self.ae.config.to_dict())}

    def index(self) -> dict:
        c = self.cfg
        return {"text_encoder": "minilm", "defaults": {"frames": c.frames, "height": c.height, "width": c.width,
                                                       "fps": c.fps, "steps": c.sample_steps,
                                                       "guidance": c.sample_guidance,
                                                       "guidance_interval": list(c.sample_guidance_interval)},
                "trained_shapes": [shape_name(sh) for sh in self.offsets]}


class ClassifierTask:
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

    def after_resume(self, out: Path) -> None:
        pass

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
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


TASKS = {"autoencoder": AutoencoderTask, "transformer": TransformerTask, "classifier": ClassifierTask}
