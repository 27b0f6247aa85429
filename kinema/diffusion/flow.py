"""Flow matching (rectified flow): the training objective, its timesteps, and an EMA of weights.

Convention (Liu et al. 2022; Lipman et al. 2022; SD3, Esser et al. 2024):

    x_t = (1 - t) x0 + t eps,    t in [0, 1],  eps ~ N(0, I)          (straight path)
    v   = dx_t/dt = eps - x0                                          (the network's target)

Latents are (B, C, T_lat, H, W) and timesteps (B, T_lat): one per latent frame. Condition frames
carry t = 0 (they are clean) and are left out of the loss through `loss_mask`.

Training t is logit-normal (SD3): t = sigmoid(n), n ~ N(mean, std), which spends most steps at
mid noise levels; then shifted towards noise, more so for more tokens, since a larger video keeps
more of its signal at a given t (SD3 section 5.3.2; Open-Sora, LTX-Video).
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import torch
import torch.nn as nn

from ..errors import KinemaError

# --- timesteps ---------------------------------------------------------------------------------


def logit_normal(shape, mean: float = 0.0, std: float = 1.0, generator: torch.Generator | None = None,
                 device=None) -> torch.Tensor:
    """t = sigmoid(mean + std * n), n ~ N(0, 1): values in (0, 1), median sigmoid(mean)."""
    n = torch.randn(shape, generator=generator, device=device)
    return torch.sigmoid(mean + std * n)


def shift_timesteps(t: torch.Tensor, shift: float) -> torch.Tensor:
    """SD3 shift: t' = s t / (1 + (s - 1) t). Monotone, keeps 0 and 1, pushes t up (noisier) for s > 1."""
    return shift * t / (1 + (shift - 1) * t)


def shift_for_tokens(num_tokens: int, base_tokens: int = 256, max_tokens: int = 4096,
                     base_shift: float = 1.0, max_shift: float = 3.0) -> float:
    """The shift for a video of `num_tokens` transformer tokens, log-linear in both:

        a     = clamp((log N - log N_base) / (log N_max - log N_base), 0, 1)
        shift = base_shift * (max_shift / base_shift) ** a

    i.e. log(shift) is linear in log(N) between (N_base, base_shift) and (N_max, max_shift): every
    doubling of the token count multiplies the shift by the same factor; constant outside."""
    a = (math.log(max(num_tokens, 1)) - math.log(base_tokens)) / (math.log(max_tokens) - math.log(base_tokens))
    a = min(max(a, 0.0), 1.0)
    return base_shift * (max_shift / base_shift) ** a


def sample_training_t(batch: int, t_lat: int, num_tokens: int, generator: torch.Generator | None = None,
                      per_frame: bool = False, mean: float = 0.0, std: float = 1.0, shift: float | None = None,
                      device=None) -> torch.Tensor:
    """Training timesteps (B, T_lat): a logit-normal draw, shifted by `shift_for_tokens(num_tokens)`
    (or by `shift` if given). By default one draw per sample is broadcast to all its frames (the
    whole clip shares a noise level, as at sampling time); `per_frame=True` draws every frame
    independently (diffusion-forcing style). The caller sets condition frames to t = 0."""
    t = logit_normal((batch, t_lat if per_frame else 1), mean, std, generator, device)
    t = shift_timesteps(t, shift_for_tokens(num_tokens) if shift is None else shift)
    return t.expand(batch, t_lat).contiguous()


# --- the objective -----------------------------------------------------------------------------


def _per_frame(t: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
    """Broadcast t (scalar, (B,) or (B, T_lat)) against x (B, C, T_lat, H, W)."""
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if t.ndim == 1:
        return t.view(-1, 1, 1, 1, 1)
    if t.ndim == 2:
        return t[:, None, :, None, None]
    return t


def add_noise(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x_t = (1 - t) x0 + t eps, t per latent frame (B, T_lat), broadcast over (C, H, W)."""
    t = _per_frame(t, x0)
    return (1 - t) * x0 + t * noise


def velocity(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The target v = eps - x0 (the same for every t on a straight path)."""
    return noise - x0


def flow_loss(pred: torch.Tensor, x0: torch.Tensor, noise: torch.Tensor,
              loss_mask: torch.Tensor | None = None, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error to the velocity, averaged over channels and then over the latent
    positions where `loss_mask` ((B, T_lat) or (B, T_lat, H, W), True = counts) is True; condition
    frames are masked out. `weight` (B, T_lat, H, W), if given, makes it a weighted mean over
    positions. Returns a scalar; a mask that selects nothing gives a zero with grad."""
    err = (pred.float() - velocity(x0, noise).float()).pow(2).mean(1)  # (B, T, H, W)
    w = torch.ones_like(err) if weight is None else weight.float().expand_as(err)
    if loss_mask is not None:
        mask = loss_mask.bool()
        w = w * (mask[:, :, None, None] if mask.ndim == 2 else mask).expand_as(err)
    if not w.any():
        return pred.sum() * 0
    return (w * err).sum() / w.sum()


def motion_weight(x0: torch.Tensor, strength: float) -> torch.Tensor:
    """Per-position loss weights (B, T_lat, H, W) that favour where the video changes:

        d = mean_c |x0 - mean_t x0|,    w = 1 + strength * d / mean(d)   (per clip)

    A static background has d ~ 0; a moving object has large d along its path. Small moving
    objects are a tiny share of the positions, so a plain mean lets the loss (and training) be
    dominated by backgrounds that any model copies from frame to frame; this tilts it towards
    motion. It biases the learned field towards the high-d content, by design; strength 0 = plain."""
    x = x0.float()
    d = (x - x.mean(2, keepdim=True)).abs().mean(1)  # (B, T, H, W)
    return 1 + strength * d / d.mean((1, 2, 3), keepdim=True).clamp(min=1e-6)


def drop_captions(captions: list[str], p: float = 0.1, generator: torch.Generator | None = None) -> list[str]:
    """Replace each caption by "" (the unconditional prompt) with probability p, for
    classifier-free guidance. Deterministic for a seeded generator."""
    drop = torch.rand(len(captions), generator=generator) < p
    return ["" if d else c for c, d in zip(captions, drop.tolist())]


# --- exponential moving average of the weights ----------------------------------------------------


class EMA:
    """Shadow copy of a model's floating-point parameters, updated as
    shadow <- d * shadow + (1 - d) * param, with d = min(decay, (1 + n) / (10 + n)) after n
    updates when `warmup` (so early weights are forgotten fast), else d = decay."""

    def __init__(self, model: nn.Module, decay: float = 0.9999, warmup: bool = True):
        self.decay, self.warmup, self.num_updates = decay, warmup, 0
        # the parameters that train (a LoRA's, not its frozen base's)
        self.shadow = {n: p.detach().float().clone() for n, p in model.named_parameters()
                       if p.is_floating_point() and p.requires_grad}

    def current_decay(self) -> float:
        n = self.num_updates
        return min(self.decay, (1 + n) / (10 + n)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.current_decay()
        for n, p in model.named_parameters():
            if n in self.shadow:
                self.shadow[n].lerp_(p.detach().to(self.shadow[n]), 1 - d)
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        for n, p in model.named_parameters():
            if n in self.shadow:
                p.copy_(self.shadow[n])

    @contextmanager
    def applied_to(self, model: nn.Module):
        """Temporarily swap the averaged weights into `model` (e.g. to sample during training)."""
        saved = {n: p.detach().clone() for n, p in model.named_parameters() if n in self.shadow}
        self.copy_to(model)
        try:
            yield model
        finally:
            with torch.no_grad():
                for n, p in model.named_parameters():
                    if n in saved:
                        p.copy_(saved[n])

    def state_dict(self) -> dict:
        """{"decay", "warmup", "num_updates", "shadow": {name: tensor}}: the shadow is a flat dict
        of tensors (safetensors-ready), the rest JSON-ready."""
        return {"decay": self.decay, "warmup": self.warmup, "num_updates": self.num_updates,
                "shadow": {n: t.clone() for n, t in self.shadow.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.decay, self.warmup = float(state["decay"]), bool(state["warmup"])
        self.num_updates = int(state["num_updates"])
        missing = set(self.shadow) - set(state["shadow"])
        if missing:
            raise KinemaError(f"EMA state lacks parameters: {sorted(missing)[:5]}")
        self.shadow = {n: state["shadow"][n].float().clone().to(self.shadow[n].device) for n in self.shadow}

