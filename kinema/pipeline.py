"""Pipeline: prompt in, Video out. Text encoder -> transformer + flow ODE sampler -> autoencoder.

    pipe = kinema.load("runs/t2v")            # a model folder, or a training run that holds one
    video = pipe.generate("a red circle moves left", frames=17, seed=0)
    video.save("out.mp4")

An empty prompt "" generates unconditionally (the model was trained with captions dropped).
The same seed gives the same video.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from .checkpoint import load_component, read_index
from .diffusion.flow import shift_for_tokens
from .diffusion.sampling import SAMPLERS, cfg, timesteps
from .errors import CheckpointError, InputError
from .models.autoencoder import AutoencoderConfig, VideoAutoencoder
from .models.text import load_text_encoder
from .models.transformer import TransformerConfig, VideoTransformer
from .runtime import autocast, default_device
from .video import MAX_SIDE, Video, check_fps, check_frames

SPATIAL, TEMPORAL = 8, 4  # autoencoder compression
MAX_STEPS = 1000


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


def _check_side(name: str, n: int, stride: int) -> int:
    if not isinstance(n, int) or n < stride or n > MAX_SIDE or n % stride:
        lo = max(stride, n // stride * stride) if isinstance(n, int) else stride
        hint = f"{lo} or {lo + stride}" if isinstance(n, int) and n > stride and n % stride else f"{lo}"
        raise InputError(f"{name} must be a multiple of {stride} between {stride} and {MAX_SIDE}, got {n}; "
                         f"nearest valid: {hint}")
    return n


class Pipeline:
    """Text-to-video with a trained autoencoder, transformer and text encoder."""

    def __init__(self, autoencoder: VideoAutoencoder, transformer: VideoTransformer, text_encoder,
                 defaults: dict | None = None, device: torch.device | None = None):
        self.autoencoder, self.transformer, self.text_encoder = autoencoder, transformer, text_encoder
        self.defaults = {"frames": 17, "height": 64, "width": 64, "fps": 8.0, "steps": 16, "guidance": 4.0,
                         **(defaults or {})}
        self.device = device or next(transformer.parameters()).device

    @classmethod
    def from_folder(cls, path: str | Path, device: str | torch.device | None = None) -> "Pipeline":
        folder = model_folder(path)
        index = read_index(folder)
        for name in ("autoencoder", "transformer"):
            if not (folder / name).is_dir():
                raise CheckpointError(f"{folder}: has no {name} (train one with `kinema train {name}`)")
        device = torch.device(device) if device else default_device()
        ae = load_autoencoder(folder).to(device).eval()
        tr = load_component(folder / "transformer", lambda c: VideoTransformer(TransformerConfig.from_dict(c)))
        text = load_text_encoder(index.get("text_encoder", "minilm")).to(device)
        return cls(ae, tr.to(device).eval(), text, index.get("defaults"), device)

    @torch.no_grad()
    def generate(self, prompt: str | list[str], *, frames: int | None = None, height: int | None = None,
                 width: int | None = None, fps: float | None = None, steps: int | None = None,
                 guidance: float | None = None, seed: int | list[int] = 0, sampler: str = "heun",
                 shift: float | None = None, progress: bool = True):
        """One Video per prompt (a single Video for a single prompt). `guidance` 1 disables
        classifier-free guidance; `shift` defaults to one that grows with the token count. `seed`
        seeds the batch's noise, or, as a list with one seed per prompt, each clip's own noise (then
        a clip does not depend on what it is batched with)."""
        d = self.defaults
        frames = check_frames(frames if frames is not None else d["frames"])
        stride = SPATIAL * self.transformer.config.patch
        height = _check_side("height", height if height is not None else d["height"], stride)
        width = _check_side("width", width if width is not None else d["width"], stride)
        fps = check_fps(fps if fps is not None else d["fps"])
        steps = steps if steps is not None else d["steps"]
        guidance = float(guidance if guidance is not None else d["guidance"])
        if not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
            raise InputError(f"steps must be between 1 and {MAX_STEPS}, got {steps}")
        if not 0 <= guidance <= 30:
            raise InputError(f"guidance must be between 0 and 30, got {guidance}")
        if sampler not in SAMPLERS:
            raise InputError(f"unknown sampler '{sampler}'; choose one of {', '.join(SAMPLERS)}")
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)

        B, C = len(prompts), self.autoencoder.config.latent_channels
        shape = (B, C, 1 + (frames - 1) // TEMPORAL, height // SPATIAL, width // SPATIAL)
        if isinstance(seed, (list, tuple)):
            if len(seed) != B:
                raise InputError(f"got {len(seed)} seeds for {B} prompts")
            x = torch.cat([torch.randn((1, *shape[1:]), generator=torch.Generator().manual_seed(int(s))) for s in seed])
        else:
            x = torch.randn(shape, generator=torch.Generator().manual_seed(int(seed)))
        x = x.to(self.device)
        cond = self.text_encoder.encode(prompts)
        uncond = self.text_encoder.encode([""] * B)
        tokens = shape[2] * shape[3] * shape[4] // self.transformer.config.patch ** 2
        ts = timesteps(steps, shift if shift is not None else shift_for_tokens(tokens)).to(self.device)

        def model_fn(x, t, c):
            states, mask = c
            with autocast(self.device):
                return self.transformer(x, t.expand(x.shape[0], x.shape[2]), states, mask).float()

        z = SAMPLERS[sampler](cfg(model_fn, cond, uncond, guidance), x, ts, progress=progress)
        with autocast(self.device):
            pixels = self.autoencoder.decode(z).float()
        videos = [Video.from_tensor(v, fps) for v in pixels]
        return videos[0] if isinstance(prompt, str) else videos


def load(path: str | Path | None = None, device: str | torch.device | None = None) -> Pipeline:
    """The pipeline in a model folder (or a training run that holds one)."""
    if path is None:
        raise CheckpointError("no default model is shipped yet: pass a model folder (--model DIR, or kinema.load(DIR))")
    return Pipeline.from_folder(path, device)


def generate_to_file(path_model, prompt: str, out: str | Path, **kwargs) -> dict:
    """Generate and save; returns what was done (for `--json`)."""
    t0 = time.perf_counter()
    pipe = load(path_model)
    video = pipe.generate(prompt, **kwargs)
    video.save(out)
    return {"out": str(out), "prompt": prompt, "frames": video.num_frames, "height": video.height,
            "width": video.width, "fps": video.fps, "seed": kwargs.get("seed", 0),
            "steps": kwargs.get("steps") or pipe.defaults["steps"], "seconds": round(time.perf_counter() - t0, 3)}
