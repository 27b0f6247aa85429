"""Pipeline: prompt in, Video out. Text encoder -> transformer + flow ODE sampler -> autoencoder.

    pipe = kinema.load("runs/t2v")            # a model folder, or a training run that holds one
    video = pipe.generate("a red circle moves left", frames=17, seed=0)
    video.save("out.mp4")

An empty prompt "" generates unconditionally (the model was trained with captions dropped).
The same seed gives the same video.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .checkpoint import load_component, read_index
from .config import SHIPPED
from .checks import (DEFAULTS, _check_video, _derive, check_budget, check_context, check_device, check_long, check_mode,
                     check_prompt, check_prompts, check_seconds, check_seed, check_seeds, check_shift,
                     check_strength, given_frames, settings, source_size)
from .diffusion import masks
from .domain import Domain, latent_features
from .diffusion.flow import shift_for_tokens
from .diffusion.sampling import SAMPLERS, cfg, timesteps
from .errors import CheckpointError, InputError
from .models.autoencoder import AutoencoderConfig, VideoAutoencoder
from .models.text import load_text_encoder
from .models.transformer import PATCHES, TransformerConfig, VideoTransformer
from .provenance import check_watermark, watermark_videos
from .limits import MAX_PASS_FRAMES, SPATIAL, TEMPORAL
from .runtime import autocast, compile_for_inference, default_device
from .video import Video, check_fit

DEFAULT_MODEL = SHIPPED  # the model kinema ships (docs/MODEL_CARD.md)
MAX_EDIT_FRAMES = MAX_PASS_FRAMES  # frames edited in one pass


def model_folder(path: str | Path) -> Path:
    """A model folder, or a training run folder that holds one in model/."""
    path = Path(path)
    if not (path / "model_index.json").is_file() and (path / "model" / "model_index.json").is_file():
        return path / "model"
    return path


def load_autoencoder(path: str | Path) -> VideoAutoencoder:
    folder = model_folder(path)
    read_index(folder)
    return load_component(folder / "autoencoder", lambda c: VideoAutoencoder(AutoencoderConfig.from_dict(c)))


class Pipeline:
    """Text-to-video with a trained autoencoder, transformer and text encoder."""

    def __init__(self, autoencoder: VideoAutoencoder, transformer: VideoTransformer, text_encoder,
                 defaults: dict | None = None, device: torch.device | None = None, domain=None):
        self.autoencoder, self.transformer, self.text_encoder = autoencoder, transformer, text_encoder
        self.defaults = {**DEFAULTS, **(defaults or {})}
        self.device = device or next(transformer.parameters()).device
        self.domain = domain  # kinema.domain.Domain of its training data's latents, or None
        self.loras: dict[str, dict] = {}  # adapters loaded (load_lora): name -> path, scale, trigger
        self._base_digest: str | None = None  # the transformer's own weights' hash, taken before any adapter
        self._fused = False

    @classmethod
    def from_folder(cls, path: str | Path, device: str | torch.device | None = None) -> "Pipeline":
        folder = model_folder(path)
        device = check_device(device) if device is not None else default_device()
        index = read_index(folder)
        base = lora_base(folder, index)
        if base is not None:  # a LoRA fine-tuning run: its base model with its adapter
            pipe = cls.from_folder(base, device)
            pipe.load_lora(folder / index["lora"].get("adapter", "adapter"))
            return pipe
        for name in ("autoencoder", "transformer"):
            if not (folder / name).is_dir():
                raise CheckpointError(f"{folder}: has no {name} (train one with `kinema train {name}`)")
        ae = load_autoencoder(folder).to(device).eval()
        tr = load_component(folder / "transformer", lambda c: VideoTransformer(TransformerConfig.from_dict(c)))
        text = load_text_encoder(index.get("text_encoder", "minilm")).to(device)
        return cls(ae, tr.to(device).eval(), text, model_spec(folder)[0], device, Domain.load(folder))

    def compile(self) -> "Pipeline":
        """torch.compile the transformer and the decoder for sampling (see `compile_for_inference`):
        every new latent shape compiles once (~20 s each on a 2-core CPU), then a one-clip sampling
        step runs ~2x faster and a batch decodes ~2.5x faster (benchmarks/speed.py). Worth it for
        long videos and many clips, not for one. The weights are frozen into the compiled code:
        compile after any change to them."""
        self.transformer = compile_for_inference(self.transformer)
        self.autoencoder = compile_for_inference(self.autoencoder, "decode")
        return self

    def base_digest(self) -> str:
        """The hash of the transformer's own weights (adapters left out, compiled or not), taken once:
        what adapters record, and what the watermark's model id is drawn from."""
        if self._base_digest is None:
            from .models import lora
            self._base_digest = lora.base_digest(getattr(self.transformer, "module", self.transformer))
        return self._base_digest

    # -- LoRA adapters (kinema.models.lora; `kinema finetune` makes them)
    def load_lora(self, path: str | Path, scale: float = 1.0, name: str | None = None) -> str:
        """Add the adapter at `path` (an adapter folder or a fine-tuning run) at `scale`, beside any
        loaded before; returns its name. An adapter trained on another base model is refused."""
        from .models import lora
        scale = _lora_scale(scale)
        if self._fused:
            raise InputError("adapters are fused into the weights: unfuse_lora() before loading another")
        if not isinstance(self.transformer, VideoTransformer):
            raise InputError("load adapters before compile(): the compiled transformer's weights are frozen")
        if name is not None and not (isinstance(name, str) and name.isidentifier()):
            raise InputError(f"an adapter name must be a Python identifier (letters, digits, _), got {name!r}")
        if name in self.loras:
            raise InputError(f"an adapter named {name!r} is already loaded")
        name = name or lora.adapter_name(path, list(self.loras))
        meta = lora.load_adapter(self.transformer, path, name, scale, self.base_digest())
        self.transformer.eval()
        self.loras[name] = {"path": str(lora.adapter_folder(path)), "scale": scale, "trigger": meta.get("trigger", "")}
        return name

    def set_lora_scale(self, scale: float, name: str | None = None) -> None:
        """Scale adapter `name` (None: every loaded adapter): 1 as trained, 0 the base model."""
        from .models import lora
        scale = _lora_scale(scale)
        if self._fused:
            raise InputError("adapters are fused into the weights: unfuse_lora() before changing a scale")
        for n in self._lora_names(name):
            lora.set_scale(self.transformer, n, scale)
            self.loras[n]["scale"] = scale

    def fuse_lora(self) -> None:
        """Add every loaded adapter (at its scale) into the transformer's weights: sampling then
        costs what the base model's does. `unfuse_lora` takes them out again."""
        from .models import lora
        if self.loras and not self._fused:
            lora.fuse(self.transformer, list(self.loras))
            self._fused = True

    def unfuse_lora(self) -> None:
        from .models import lora
        if self._fused:
            lora.unfuse(self.transformer)
            self._fused = False

    def unload_lora(self, name: str | None = None) -> None:
        """Remove adapter `name` (None: all): the base model again."""
        from .models import lora
        for n in self._lora_names(name):
            lora.remove(self.transformer, n)
            del self.loras[n]
        self._fused = False

    def _lora_names(self, name: str | None) -> list[str]:
        if name is None:
            return list(self.loras)
        if name not in self.loras:
            raise InputError(f"no adapter named {name!r} is loaded (loaded: {', '.join(self.loras) or 'none'})")
        return [name]

    # -- settings shared by every mode
    def _settings(self, frames, height, width, fps, steps, guidance, sampler, interval=None, clips=1) -> dict:
        return settings(self.defaults, self.transformer.config.patch, frames, height, width, fps, steps, guidance,
                        sampler, interval, clips)

    def _noise(self, B: int, shape: tuple, seed) -> torch.Tensor:
        """Noise for B clips from one seed, or from a list of B seeds (one per clip)."""
        seed = check_seeds(seed, B)
        if isinstance(seed, list):
            x = torch.cat([torch.randn((1, *shape), generator=torch.Generator().manual_seed(s)) for s in seed])
        else:
            x = torch.randn((B, *shape), generator=torch.Generator().manual_seed(seed))
        return x.to(self.device)

    def _latent_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        C = self.autoencoder.config.latent_channels
        return C, 1 + (frames - 1) // TEMPORAL, height // SPATIAL, width // SPATIAL

    @torch.no_grad()
    def _denoise(self, prompts: list[str], x: torch.Tensor, s: dict, *, shift: float | None = None,
                 given: torch.Tensor | None = None, clean: torch.Tensor | None = None, start: float = 1.0,
                 progress: bool = False, on_step=None) -> torch.Tensor:
        """Solve the flow ODE from `start` (1: pure noise) to 0. Condition tokens (`clean`, (B, T, h, w)
        on the token grid) hold the latents `given` (B, C, T, H, W) throughout: they enter every
        model call clean, at t = 0, and their velocity is set to 0, so sampling never changes them."""
        p = self.transformer.config.patch
        B = x.shape[0]
        keep = None
        if clean is not None:
            clean = clean.to(self.device).expand(B, -1, -1, -1)
            keep = masks.to_latent(clean, p)[:, None]
            x = torch.where(keep, given.to(x.dtype), x)
        cond = self.text_encoder.encode(prompts)
        uncond = self.text_encoder.encode([""] * B)
        tokens = x.shape[2] * x.shape[3] * x.shape[4] // p ** 2
        ts = timesteps(s["steps"], shift if shift is not None else shift_for_tokens(tokens)).to(self.device)
        if start < 1.0:  # start part-way (video-to-video): the schedule's times below `start`
            ts = torch.cat([ts.new_tensor([start]), ts[ts < start]])

        context = {}  # the text's keys and values: the same at every step, so computed at the first

        def model_fn(x, t, c):
            n = x.shape[0] // B  # 2 for a guided call (conditional + unconditional), else 1
            cl = None if clean is None else clean.repeat(n, 1, 1, 1)
            with autocast(self.device):
                if n not in context:
                    context[n] = self.transformer.text_context(*c)
                v = self.transformer(x, t.expand(x.shape[0], x.shape[2]), context[n], clean=cl).float()
            return v if keep is None else v.masked_fill(keep.repeat(n, 1, 1, 1, 1), 0.0)

        guided = cfg(model_fn, cond, uncond, s["guidance"], s["guidance_interval"])
        callback = None if on_step is None else (lambda i, t, x: on_step(i + 1, len(ts) - 1))
        return SAMPLERS[s["sampler"]](guided, x, ts, callback=callback, progress=progress)

    @torch.no_grad()
    def _decode(self, z: torch.Tensor, fps: float) -> list[Video]:
        with autocast(self.device):
            pixels = self.autoencoder.decode(z).float()
        return [Video.from_tensor(v, fps) for v in pixels]

    @torch.no_grad()
    def encode(self, video: Video, height: int, width: int, fit: str = "crop") -> torch.Tensor:
        """Normalised latents (1, C, T_lat, H/8, W/8) of a video fitted to height x width (its first
        4k+1 frames)."""
        v = video.resize(height, width, fit)
        v = Video(v.frames[: 1 + (v.num_frames - 1) // TEMPORAL * TEMPORAL], v.fps)
        return self._encode(v.to_tensor()[None])

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        """Latents of a batch of clips (B, 3, T, H, W): the one way clips reach the encoder, contiguous,
        so a clip gives the same latents alone or in a batch (bf16 convolutions round by layout)."""
        with autocast(self.device):
            return self.autoencoder.encode(x.contiguous().to(self.device)).float()

    @torch.no_grad()
    def roundtrip(self, videos: list[Video], batch: int = 16) -> list[Video]:
        """The autoencoder's reconstructions decode(encode(v)) of videos of the model's size: what a
        perfect transformer would give through this autoencoder (`kinema eval --roundtrip`)."""
        out = []
        for i in range(0, len(videos), batch):
            z = self._encode(torch.stack([v.to_tensor() for v in videos[i: i + batch]]))
            out += self._decode(z, videos[i].fps)
        return out

    def _no_tokens(self, latents: torch.Tensor) -> torch.Tensor:
        """An all-False token mask (1, T, h, w) for latents (1, C, T, H, W)."""
        p = self.transformer.config.patch
        return torch.zeros(1, latents.shape[2], latents.shape[3] // p, latents.shape[4] // p, dtype=torch.bool)

    def _pixel_mask(self, mask: Video, video: Video, frames: int, s: dict, fit: str) -> torch.Tensor:
        """A mask (white = regenerate) as a bool tensor (frames, H, W) at the model's size: a still
        mask applies to every frame, a mask video frame by frame (at the source's fps). A mask of
        another size is resized (with a warning) if its aspect is the source's, else refused."""
        if (mask.height, mask.width) != (video.height, video.width):
            if abs(mask.width / mask.height - video.width / video.height) > 0.01:
                raise InputError(f"the mask is {mask.width}x{mask.height} but the video {video.width}x{video.height}: "
                                 f"a mask must have the video's aspect ratio")
            warnings.warn(f"resizing the {mask.width}x{mask.height} mask to the video's {video.width}x{video.height}")
        if mask.num_frames > 1:
            mask = Video(mask.frames, video.fps).resample(s["fps"])
            if mask.num_frames < frames:
                raise InputError(f"the mask video has {mask.num_frames} frames at {s['fps']:g} fps, the video {frames}")
        m = torch.from_numpy(mask.resize(s["height"], s["width"], fit).frames[:frames].max(-1) > 127)
        return m.expand(frames, -1, -1)

    @staticmethod
    def _latent_mask(m: torch.Tensor) -> torch.Tensor:
        """Where a pixel mask (frames, H, W) touches the latents: (1, T_lat, H/8, W/8)."""
        m = m.float()
        m = torch.cat([m[:1], m[1:].view(-1, TEMPORAL, *m.shape[1:]).amax(1)])  # frame 0, then groups of 4
        return F.max_pool2d(m[None], SPATIAL) > 0

    @staticmethod
    def _paste(generated: np.ndarray, source: np.ndarray, m: torch.Tensor) -> np.ndarray:
        """The generated frames inside the mask, the source's outside: outside it the output IS the
        source; the blend ramps over ~2 pixels inside the mask's edge, so no seam shows."""
        a = m.float()[:, None]
        a = (a * F.avg_pool2d(a, 5, stride=1, padding=2, count_include_pad=False))[:, 0, ..., None].numpy()
        out = a * generated.astype(np.float32) + (1 - a) * source.astype(np.float32)
        return np.round(out).astype(np.uint8)

    def _frame_conditions(self, images: dict[int, Video], s: dict, fit: str):
        """Latents and token mask for frames given as images: {frame index: image}. Frame 0 is
        encoded alone (as the autoencoder encodes every first frame); an image for frame i > 0
        fixes the latent frame that holds frame i (frames 4k-3 ... 4k), encoded as the image held
        still for those 4 frames."""
        given = torch.zeros(1, *self._latent_shape(s["frames"], s["height"], s["width"]), device=self.device)
        clean = self._no_tokens(given)
        for i, image in sorted(images.items()):
            still = Video(np.repeat(image.frames[:1], 1 if i == 0 else 1 + TEMPORAL, 0), s["fps"])
            k = latent_frame(i)
            given[:, :, k] = self.encode(still, s["height"], s["width"], fit)[:, :, -1]
            clean[:, k] = True
        return given, clean

    @torch.no_grad()
    def given_domain(self, videos: list[Video], height: int, width: int, fit: str = "crop",
                     warn: bool = True) -> dict | None:
        """How far frames given to a mode are from this model's training data (kinema.domain):
        {"in_domain", "domain_score", "domain_threshold"} for the farthest of `videos` (stills or
        clips, fitted to height x width, their first frames up to one 17-frame window), or None
        for a model without domain statistics. With `warn`, one warning when it is outside."""
        if self.domain is None or not videos:
            return None
        return self._domain_of([self.encode(Video(v.frames[:17], v.fps), height, width, fit) for v in videos], warn)

    def _domain_of(self, latents: list[torch.Tensor], warn: bool = True) -> dict | None:
        """`given_domain` of frames already encoded (normalised latents, their first 5 latent frames:
        the causal encoder gives a clip's first 17 frames the same latents alone or in a longer clip)."""
        if self.domain is None:
            return None
        score = max(float(self.domain.score(latent_features(z[:, :, :5].float().cpu()))[0]) for z in latents)
        inside = score <= self.domain.threshold
        if warn and not inside:
            warnings.warn(f"the given frames look unlike what this model was trained on (domain score {score:.2f} > "
                          f"{self.domain.threshold:.2f}): they are kept, but what the model adds will drift toward "
                          f"its own training data ({self.domain.what or 'see docs/MODEL_CARD.md'})")
        return {"in_domain": inside, "domain_score": round(score, 3), "domain_threshold": round(self.domain.threshold, 3)}

    @torch.no_grad()
    def _lock(self, videos: list[Video], images: dict[int, Video], s: dict, fit: str) -> list[Video]:
        """Show each given frame as the autoencoder's round trip of its image, as frame 0 already is.
        A frame after 0 shares its latent frame with 3 others, and the causal decoder mixes in the
        generated frames before it (measured: the last frame of `interpolate` 4 dB under the round
        trip); so frame i becomes the round trip, and the other frames of its group blend towards
        it with weight 1 - |j - i| / 4. Each image's round trip is made once for the batch."""
        later = {i: image for i, image in images.items() if i > 0}
        if not later:
            return videos
        outs = [v.frames.astype(np.float32) for v in videos]
        for i, image in later.items():
            rt = self._decode(self.encode(Video(image.frames[:1]), s["height"], s["width"], fit), s["fps"])[0].frames[0]
            k = latent_frame(i)
            for j in range(TEMPORAL * (k - 1) + 1, TEMPORAL * k + 1):  # the frames of latent frame k
                w = 1 - abs(j - i) / TEMPORAL
                for out in outs:
                    out[j] = (1 - w) * out[j] + w * rt
        return [Video(np.round(out).astype(np.uint8), v.fps) for out, v in zip(outs, videos)]

    @torch.no_grad()
    def generate(self, prompt: str | list[str], *, frames: int | None = None, height: int | None = None,
                 width: int | None = None, fps: float | None = None, steps: int | None = None,
                 guidance: float | None = None, seed: int | list[int] = 0, sampler: str = "heun",
                 shift: float | None = None, image: Video | None = None, last_image: Video | None = None,
                 keyframes: dict[int, Video] | None = None, fit: str = "crop", seconds: float | None = None,
                 guidance_interval: tuple[float, float] | None = None, progress: bool = True,
                 on_step: Callable[[dict], None] | None = None, watermark: bool | int | list[int] = True):
        """One Video per prompt (a single Video for a single prompt). `guidance` 1 disables
        classifier-free guidance, which applies at times t in `guidance_interval` (LO, HI) only
        (default: the model's); `shift` defaults to one that grows with the token count. `seed`
        seeds the batch's noise, or, as a list with one seed per prompt, each clip's own noise (then
        a clip does not depend on what it is batched with).

        Frames you give are kept (under the watermark; `watermark=False` keeps them bit for bit): `image` becomes frame 0 (image-to-video), `last_image` the last
        frame (first + last frame), `keyframes` {frame index: image} any frames; images of any size
        are fitted with `fit` (crop, pad, stretch); with `image` and no size given, the clip takes the
        model's trained size nearest the image's aspect. See `_frame_conditions` for frames after 0.

        `seconds` makes a long video of one prompt (or prompt schedule, see `extend`): a first window,
        then `extend` for the rest; keyframes past the first window are refused.

        `on_step(info)` is called after every sampling step with {"step", "steps", "window",
        "windows"} (window counts from 0; one clip is window 0 of 1): for progress, and to cancel
        by raising (`kinema.errors.Cancelled`). Every mode takes it.

        `watermark` (every mode): kinema's invisible watermark on the frames (kinema.provenance):
        True (the default) marks each clip with this model's id and a serial drawn from the call
        (the same call makes the same frames), an int (or one per prompt) is the 32-bit payload,
        False leaves the frames unmarked (research: evaluation, benchmarks)."""
        prompts = check_prompts(prompt)
        check_watermark(watermark, len(prompts))
        if watermark is not False:  # marked once, here, over whatever the unmarked call makes
            made = {"mode": "generate", "prompt": prompt, "seed": seed, "frames": frames, "height": height,
                    "width": width, "fps": fps, "steps": steps, "guidance": guidance, "sampler": sampler,
                    "seconds": seconds, "image": _content(image), "last_image": _content(last_image),
                    "keyframes": {k: _content(v) for k, v in (keyframes or {}).items()}, "fit": fit,
                    "shift": shift, "guidance_interval": guidance_interval}
            videos = self.generate(prompt, frames=frames, height=height, width=width, fps=fps, steps=steps,
                                   guidance=guidance, seed=seed, sampler=sampler, shift=shift, image=image,
                                   last_image=last_image, keyframes=keyframes, fit=fit, seconds=seconds,
                                   guidance_interval=guidance_interval, progress=progress, on_step=on_step,
                                   watermark=False)
            return watermark_videos(self, videos, watermark, made)
        if isinstance(image, Video):  # sized like the image when not told (the trained size nearest its aspect)
            height, width = source_size(self.defaults, (image.height, image.width), height, width)
        if seconds is not None:
            return self._long(prompt, seconds, frames=frames, height=height, width=width, fps=fps, steps=steps,
                              guidance=guidance, seed=seed, sampler=sampler, shift=shift, image=image,
                              last_image=last_image, keyframes=keyframes, fit=fit,
                              guidance_interval=guidance_interval, progress=progress, on_step=on_step)
        s = self._settings(frames, height, width, fps, steps, guidance, sampler, guidance_interval, len(prompts))
        images = given_frames(image, last_image, keyframes, s["frames"])
        seed, fit, shift = check_seeds(seed, len(prompts)), check_fit(fit), check_shift(shift)
        self.given_domain(list(images.values()), s["height"], s["width"], fit)
        x = self._noise(len(prompts), self._latent_shape(s["frames"], s["height"], s["width"]), seed)
        given, clean = self._frame_conditions(images, s, fit) if images else (None, None)
        z = self._denoise(prompts, x, s, shift=shift, given=given, clean=clean, progress=progress,
                          on_step=_window_steps(on_step, 0, 1))
        videos = self._lock(self._decode(z, s["fps"]), images, s, fit)
        return videos[0] if isinstance(prompt, str) else videos

    def _long(self, prompt, seconds, *, frames, height, width, fps, seed, image, last_image, keyframes, fit,
              progress, on_step, **common) -> Video:
        """generate(seconds=...): a first window, then `extend` for the rest."""
        if not isinstance(prompt, str):
            raise InputError(f"a long video (seconds=) takes one prompt or prompt schedule, not a "
                             f"{type(prompt).__name__}")
        seconds, seed = check_seconds(seconds), check_seed(seed)
        s = self._settings(frames, height, width, fps, common["steps"], common["guidance"], common["sampler"],
                           common["guidance_interval"])
        check_long(round(seconds * s["fps"]), s["height"], s["width"])
        check_context(2, s["frames"])  # what `extend` continues it with
        common.update(steps=s["steps"], guidance=s["guidance"], guidance_interval=s["guidance_interval"])
        todo = round(seconds * s["fps"]) - s["frames"]  # frames left after the first window
        windows = 1 + (-(-todo // (s["frames"] - 1 - TEMPORAL)) if todo > 0 else 0)
        first = self.generate(schedule_at(prompt_schedule(prompt), 0.0), frames=s["frames"], height=s["height"],
                              width=s["width"], fps=s["fps"], seed=seed, image=image, last_image=last_image,
                              keyframes=keyframes, fit=fit, progress=False, watermark=False,
                              on_step=_window_steps(on_step, 0, windows, whole=True), **common)
        rest = seconds - first.duration
        if rest <= 0:
            return Video(first.frames[: max(1, round(seconds * s["fps"]))], s["fps"])
        return self.extend(first, prompt, rest, frames=s["frames"], height=s["height"], width=s["width"],
                           fps=s["fps"], seed=_derive(seed, 1), clock=first.duration, progress=progress,
                           on_step=_window_steps(on_step, 1, windows, whole=True), watermark=False, **common)

    # -- long videos, window by window
    @torch.no_grad()
    def extend(self, video: Video, prompt: str, seconds: float, *, context: int = 2, frames: int | None = None,
               height: int | None = None, width: int | None = None, fps: float | None = None,
               steps: int | None = None, guidance: float | None = None, seed: int = 0, sampler: str = "heun",
               shift: float | None = None, fit: str = "crop", clock: float = 0.0,
               guidance_interval: tuple[float, float] | None = None, progress: bool = True,
               on_step: Callable[[dict], None] | None = None, watermark: bool | int = True) -> Video:
        """The video (fitted to the call's size and fps; by default the model's fps and its trained size
        nearest the video's aspect) followed by `seconds` more, the whole under the watermark (see
        `generate`), generated window by window: each window of `frames` frames is conditioned on the last
        1 + 4 (context - 1) frames so far (re-encoded: `context` latent frames) and adds the rest.
        Only one window is ever in the model, so memory stays flat with length. `prompt` may be a
        schedule, "0s: a red ball rolls left; 4s: the camera zooms in" (times from the start of the
        new part, plus `clock`): each window follows the prompt in force where it starts."""
        _check_video(video, "the video to extend")
        check_watermark(watermark)
        schedule = prompt_schedule(check_prompt(prompt))
        height, width = source_size(self.defaults, (video.height, video.width), height, width)
        s = self._settings(frames, height, width, fps, steps, guidance, sampler, guidance_interval)
        seconds, seed, fit, shift = check_seconds(seconds), check_seed(seed), check_fit(fit), check_shift(shift)
        context = check_context(context, s["frames"])
        todo = round(seconds * s["fps"])
        check_long(todo, s["height"], s["width"])
        out = video.resample(s["fps"]).resize(s["height"], s["width"], fit).frames
        if clock == 0.0:  # a source given to extend (a long video's first window was checked by generate)
            self.given_domain([Video(out, s["fps"])], s["height"], s["width"])
        check_long(len(out) + todo, s["height"], s["width"])
        keep = 1 + TEMPORAL * (context - 1)  # pixel frames of context
        new_per_window = s["frames"] - keep
        windows = -(-todo // new_per_window)
        chunks, made = [out], 0
        ctx = out[-keep:]  # the last frames so far: what the next window continues
        if len(ctx) < keep:  # a source shorter than the context: repeat its first frame before it
            ctx = np.concatenate([np.repeat(ctx[:1], keep - len(ctx), 0), ctx])
        for w in tqdm(range(windows), desc="extending", unit="window", disable=not progress):
            given = torch.zeros(1, *self._latent_shape(s["frames"], s["height"], s["width"]), device=self.device)
            given[:, :, :context] = self.encode(Video(ctx, s["fps"]), s["height"], s["width"])
            clean = self._no_tokens(given)
            clean[:, :context] = True
            x = self._noise(1, given.shape[1:], _derive(seed, w))
            text = schedule_at(schedule, clock + made / s["fps"])
            z = self._denoise([text], x, s, shift=shift, given=given, clean=clean,
                              on_step=_window_steps(on_step, w, windows))
            new = self._decode(z, s["fps"])[0].frames[keep:][: todo - made]
            chunks.append(new)
            ctx = np.concatenate([ctx, new])[-keep:]
            made += len(new)
        made = {"mode": "extend", "prompt": prompt, "seconds": seconds, "seed": seed, **s,
                "source": _content(Video(out, s["fps"]))}
        return watermark_videos(self, Video(np.concatenate(chunks), s["fps"]), watermark, made)

    @torch.no_grad()
    def interpolate(self, first: Video, last: Video, prompt: str = "", *, frames: int | None = None,
                    **kwargs) -> Video:
        """In-between frames: a clip of `frames` frames that starts at `first` (its last frame, if a
        video) and ends at `last` (its first frame), following `prompt` if one is given."""
        first, last = _check_video(first, "the first image"), _check_video(last, "the last image")
        kwargs["height"], kwargs["width"] = source_size(self.defaults, (first.height, first.width),
                                                        kwargs.get("height"), kwargs.get("width"))
        return self.generate(prompt, frames=frames, image=Video(first.frames[-1:], first.fps),
                             last_image=Video(last.frames[:1], last.fps), **kwargs)

    # -- editing
    @torch.no_grad()
    def edit(self, video: Video, prompt: str, *, strength: float | None = None, mask: Video | None = None,
             height: int | None = None, width: int | None = None, fps: float | None = None,
             steps: int | None = None, guidance: float | None = None, seed: int = 0, sampler: str = "heun",
             shift: float | None = None, fit: str = "crop", guidance_interval: tuple[float, float] | None = None,
             progress: bool = True, on_step: Callable[[dict], None] | None = None,
             watermark: bool | int = True) -> Video:
        """Video-to-video with a new prompt. The source (fitted to `height` x `width` at `fps`; by
        default the model's fps and its trained size nearest the source's aspect; its first
        4k+1 frames, at most MAX_EDIT_FRAMES) is encoded, noised to `strength` and denoised
        (SDEdit, Meng et al. 2022): strength 0 returns the source, 1 ignores it (default 0.6).
        With `mask` (white = regenerate; an image applies to every frame, a video frame by frame)
        only the masked region is regenerated (default strength 1 there): every latent token
        the mask does not touch is kept exactly as the source's, and outside the mask the output
        frames are the source's pixels (`_paste`: the decoder would otherwise let the new content
        bleed a few pixels past the edge), under the watermark that covers the whole frame
        (`watermark=False` keeps them bit for bit)."""
        _check_video(video, "the video to edit")
        check_watermark(watermark)
        if mask is not None:
            _check_video(mask, "the mask")
        strength = check_strength((1.0 if mask is not None else 0.6) if strength is None else strength)
        prompt, seed, fit, shift = check_prompt(prompt), check_seed(seed), check_fit(fit), check_shift(shift)
        height, width = source_size(self.defaults, (video.height, video.width), height, width)
        s = self._settings(None, height, width, fps, steps, guidance, sampler, guidance_interval)
        resampled = max(1, round(video.num_frames * s["fps"] / video.fps))  # as Video.resample makes
        check_budget(1, min(MAX_EDIT_FRAMES, resampled), s["height"], s["width"], self.transformer.config.patch)
        src = video.resample(s["fps"]).resize(s["height"], s["width"], fit)
        n = min(MAX_EDIT_FRAMES, 1 + (src.num_frames - 1) // TEMPORAL * TEMPORAL)
        src = Video(src.frames[:n], s["fps"])
        if strength == 0.0:  # nothing made: the source as it is, unmarked
            return src
        made = {"mode": "edit", "prompt": prompt, "strength": strength, "seed": seed, **s, "source": _content(src)}
        z0 = self.encode(src, s["height"], s["width"])
        self._domain_of([z0])
        given = clean = pixels = None
        if mask is not None:  # a token is kept if the mask touches none of its latent positions
            pixels = self._pixel_mask(mask, video, src.num_frames, s, fit)
            given, clean = z0, masks.to_tokens(~self._latent_mask(pixels), self.transformer.config.patch)
        x = self._noise(1, z0.shape[1:], seed)
        x = (1 - strength) * z0 + strength * x
        z = self._denoise([prompt], x, s, shift=shift, given=given, clean=clean, start=strength, progress=progress,
                          on_step=_window_steps(on_step, 0, 1))
        out = self._decode(z, s["fps"])[0]
        out = out if pixels is None else Video(self._paste(out.frames, src.frames, pixels), s["fps"])
        return watermark_videos(self, out, watermark, made)


def _content(video) -> int | None:
    """A cheap fingerprint of a given image or video (what the watermark's serial is drawn from)."""
    return int(video.frames.astype(np.int64).sum()) if isinstance(video, Video) else None


def _window_steps(on_step, window: int, windows: int, whole: bool = False):
    """The sampler's (step, steps) as on_step's dict for window `window` of `windows`; with `whole`,
    `on_step` is itself a mode's callback (a long video's parts), which is given window offsets."""
    if on_step is None:
        return None
    if whole:
        return lambda info: on_step({**info, "window": info["window"] + window,
                                     "windows": windows if window == 0 else info["windows"] + window})
    return lambda step, steps: on_step({"step": step, "steps": steps, "window": window, "windows": windows})


def latent_frame(i: int) -> int:
    """The latent frame that holds pixel frame i: frame 0 alone, then frames 4k-3 ... 4k in k."""
    return (i + TEMPORAL - 1) // TEMPORAL


_TIME = re.compile(r"(?:^|;)\s*(\d+(?:\.\d+)?)\s*s\s*:")


def prompt_schedule(prompt: str) -> list[tuple[float, str]]:
    """A prompt or a schedule of prompts, "0s: a red ball rolls left; 4s: the camera zooms in", as
    [(start second, prompt)], sorted; a plain prompt is [(0, prompt)]. A schedule must start at 0s."""
    marks = list(_TIME.finditer(prompt))
    if not marks:
        return [(0.0, prompt.strip())]
    if prompt[: marks[0].start()].strip():
        raise InputError(f"a prompt schedule must start with a time, like '0s: ...', got {prompt!r}")
    out = [(float(m.group(1)), prompt[m.end(): nxt.start() if nxt else len(prompt)].strip())
           for m, nxt in zip(marks, [*marks[1:], None])]
    out.sort(key=lambda e: e[0])
    if out[0][0] != 0:
        raise InputError(f"a prompt schedule must say what happens from 0s, got {prompt!r}")
    return out


def schedule_at(schedule: list[tuple[float, str]], second: float) -> str:
    """The prompt in force at `second`."""
    return [text for start, text in schedule if start <= second + 1e-9][-1]


def _lora_scale(scale) -> float:
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not -10 <= scale <= 10:
        raise InputError(f"a LoRA scale must be a number in [-10, 10] (1: as trained, 0: off), got {scale!r}")
    return float(scale)


def lora_base(folder: Path, index: dict) -> Path | None:
    """The base model of a LoRA fine-tuning run's model folder (None for a full model)."""
    info = index.get("lora")
    if not info:
        return None
    if not isinstance(info, dict) or not isinstance(info.get("base_model"), str):
        raise CheckpointError(f"{folder}: corrupt model_index.json (its lora entry names no base model)")
    base = Path(info["base_model"])
    if not (model_folder(base) / "model_index.json").is_file():
        raise CheckpointError(f"{folder}: an adapter on the base model {base}, which is missing (load the adapter "
                              f"onto its base with --model BASE --lora {folder})")
    return model_folder(base)


def load(path: str | Path | None = None, device: str | torch.device | None = None) -> Pipeline:
    """The pipeline in a model folder (or a training run that holds one); None: the shipped default.
    `device`: cpu, cuda or cuda:N (default: cuda where available, else cpu)."""
    return Pipeline.from_folder(_model_path(path), device)


def _model_path(path) -> Path:
    if path is None:
        path = shipped_model()
        if path is None:
            raise CheckpointError(f"the shipped default model is missing from {DEFAULT_MODEL} (an incomplete "
                                  f"install?); pass a model folder: --model DIR, or kinema.load(DIR)")
    return model_folder(path)


def shipped_model() -> Path | None:
    """The folder of the default model kinema ships, or None where it is missing."""
    return DEFAULT_MODEL if (DEFAULT_MODEL / "model_index.json").is_file() else None


def model_spec(model) -> tuple[dict, int]:
    """A model's sampling defaults and transformer patch: a Pipeline's, or a model folder's read
    from its JSON alone (no weights; None: the shipped model)."""
    if isinstance(model, Pipeline):
        return model.defaults, model.transformer.config.patch
    folder = _model_path(model)
    index = read_index(folder)
    base = lora_base(folder, index)
    if base is not None:
        return model_spec(base)
    defaults = index.get("defaults") or {}
    try:
        patch = json.loads((folder / "transformer" / "config.json").read_text()).get("patch", 2)
    except (OSError, ValueError, AttributeError):
        raise CheckpointError(f"{folder}: has no readable transformer/config.json (train one with "
                              f"`kinema train transformer`)") from None
    if not isinstance(defaults, dict) or patch not in PATCHES:
        raise CheckpointError(f"{folder}: corrupt model_index.json defaults or transformer patch {patch!r}")
    return {**defaults, "sizes": trained_sizes(index)}, patch


def trained_sizes(index: dict) -> list[tuple[int, int]]:
    """The (height, width) of every shape a model was trained on (model_index.json trained_shapes),
    in order; [] where none is recorded."""
    sizes = []
    for shape in index.get("trained_shapes") or ():
        try:
            _, h, w = (int(n) for n in str(shape).split("x"))
        except ValueError:
            continue
        if (h, w) not in sizes:
            sizes.append((h, w))
    return sizes


def preflight(model, mode: str, *, seconds=None, **kwargs) -> dict:
    """The checks of a `mode` call that need no weights, made from the model folder's JSON alone,
    so a bad request fails in a moment instead of after loading (seconds); returns the call's
    settings (size, fps, ...: what its inputs will be fitted to). The mode checks everything again."""
    check_mode(mode)
    defaults, patch = model_spec(model)
    for name, check in (("seed", check_seed), ("fit", check_fit), ("strength", check_strength),
                        ("shift", check_shift)):
        if kwargs.get(name) is not None:
            check(kwargs[name])
    s = settings(defaults, patch, *(kwargs.get(k) for k in ("frames", "height", "width", "fps", "steps", "guidance")),
                 kwargs.get("sampler", "heun"), kwargs.get("guidance_interval"))
    if mode == "extend" or seconds is not None:  # (a long video is extended with the default context)
        check_context(kwargs.get("context", 2), s["frames"])
    if seconds is not None:
        check_long(round(check_seconds(seconds) * s["fps"]), s["height"], s["width"])
    return s
