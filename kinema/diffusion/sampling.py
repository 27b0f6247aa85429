"""Samplers: solve the flow ODE dx/dt = v(x, t) from t = 1 (noise) down to t = 0 (data).

Small pure functions in the style of k-diffusion. `model_fn(x, t) -> v` takes the current
latents and a 0-d timestep tensor and returns the velocity eps - x0. Everything else is the
caller's business and lives in its `model_fn` wrapper: expanding t to one timestep per latent
frame, the text states, and re-imposing condition frames (clean latents with t = 0 for
image-to-video, extension, interpolation) before every model call. `cfg` wraps a model_fn
with classifier-free guidance.

The samplers draw no random numbers: the same x (from a seeded generator) gives the same video.
"""

from __future__ import annotations

from typing import Callable

import torch
from tqdm.auto import tqdm

from ..errors import InputError
from .flow import shift_timesteps

ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def timesteps(steps: int, shift: float = 1.0, device=None) -> torch.Tensor:
    """steps + 1 times from 1 down to 0, evenly spaced, then shifted (shift > 1: more steps at high noise)."""
    if steps < 1:
        raise InputError(f"steps must be at least 1, got {steps}")
    return shift_timesteps(torch.linspace(1.0, 0.0, steps + 1, device=device), shift)


def _steps(ts: torch.Tensor, progress: bool):
    return tqdm(range(len(ts) - 1), disable=not progress, desc="sampling", leave=False)


@torch.no_grad()
def euler(model_fn: ModelFn, x: torch.Tensor, ts: torch.Tensor, callback=None, progress: bool = False) -> torch.Tensor:
    """First order: x_{i+1} = x_i + (t_{i+1} - t_i) v(x_i, t_i). `callback(i, t_i, x_{i+1})` after each step."""
    for i in _steps(ts, progress):
        t, t_next = ts[i], ts[i + 1]
        x = x + (t_next - t) * model_fn(x, t)
        if callback is not None:
            callback(i, t, x)
    return x


@torch.no_grad()
def heun(model_fn: ModelFn, x: torch.Tensor, ts: torch.Tensor, callback=None, progress: bool = False) -> torch.Tensor:
    """Second order (Heun / trapezoid, Karras et al. 2022 Alg. 1): an Euler predictor, then the mean
    of the slopes at both ends. The step to t = 0 is plain Euler (the velocity there needs no
    correction, and the model is never evaluated at t = 0). Two model calls per step but the last."""
    for i in _steps(ts, progress):
        t, t_next = ts[i], ts[i + 1]
        d = model_fn(x, t)
        x_pred = x + (t_next - t) * d
        if t_next == 0:
            x = x_pred
        else:
            x = x + (t_next - t) * (d + model_fn(x_pred, t_next)) / 2
        if callback is not None:
            callback(i, t, x)
    return x


SAMPLERS = {"euler": euler, "heun": heun}


# --- classifier-free guidance ------------------------------------------------------------------


def _pad_to(a: torch.Tensor, shape) -> torch.Tensor:
    """Zero-pad (False for bool) every dim but the batch up to `shape`."""
    if tuple(a.shape[1:]) == tuple(shape):
        return a
    out = a.new_zeros((a.shape[0], *shape))
    out[(slice(None), *(slice(0, n) for n in a.shape[1:]))] = a
    return out


def _cat_batch(a, b):
    """Concatenate conditioning along the batch: tensors, tuples/lists of tensors, or None."""
    if a is None:
        return None
    if isinstance(a, (tuple, list)):
        return type(a)(_cat_batch(u, v) for u, v in zip(a, b))
    shape = [max(m, n) for m, n in zip(a.shape[1:], b.shape[1:])]
    return torch.cat([_pad_to(a, shape), _pad_to(b, shape)])


def cfg(model_fn: Callable, cond, uncond, guidance: float, interval: tuple[float, float] = (0.0, 1.0)) -> ModelFn:
    """Classifier-free guidance (Ho & Salimans 2022): v = v_uncond + g (v_cond - v_uncond).

    `model_fn(x, t, c) -> v` takes conditioning `c` (a tensor or a tuple of tensors with the
    batch first, e.g. (text_states, text_mask)); `cond` and `uncond` (e.g. the encoded prompt
    and the encoded "") are concatenated along the batch, zero-padding other dims (a shorter
    text is padded with masked-out tokens), so both passes are ONE model call on 2B samples.
    guidance == 1 skips the unconditional pass. Guidance applies only at times t with
    interval[0] <= t <= interval[1] (Kynkaanniemi et al. 2024, "Applying guidance in a limited
    interval"); outside it the conditional velocity alone is used, in a call on B samples.
    Returns `fn(x, t)` for the samplers."""
    if guidance == 1.0:
        return lambda x, t: model_fn(x, t, cond)
    both = _cat_batch(cond, uncond)
    lo, hi = interval

    def guided(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if not lo <= float(t) <= hi:
            return model_fn(x, t, cond)
        v_cond, v_uncond = model_fn(torch.cat([x, x]), t, both).chunk(2)
        return v_uncond + guidance * (v_cond - v_uncond)

    return guided
