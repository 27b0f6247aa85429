"""Condition masks: which latent tokens a sample is given clean, so one model serves every mode.

A mask is a bool tensor (B, T_lat, h, w) over the transformer's token grid (latent frames x
patches), True where the token is a condition: it enters the model clean (its timestep is 0), is
left out of the loss in training, and is never changed by sampling. The modes are masks:

    text         nothing given (text-to-video)
    image        latent frame 0 (image-to-video: the first frame is encoded alone)
    extend       the first k latent frames (continue a clip)
    interpolate  the first and the last latent frame (first + last frame, in-betweening)
    keyframes    a random set of latent frames
    inpaint      every frame but a random box of tokens (regenerate a region; the rest is kept)

Training draws one mode per sample with configurable weights (`sample_masks`, as in LTX-Video and
Open-Sora's random mask generators), so text-to-video, image-to-video, extension, interpolation
and editing all come from the same weights. Captions are still dropped at random, so every mode
also works without a prompt.
"""

from __future__ import annotations

import math

import torch

from ..errors import InputError

MODES = ("text", "image", "extend", "interpolate", "keyframes", "inpaint")


def check_weights(weights: dict) -> dict[str, float]:
    """Mode weights as floats, unknown modes and bad values refused; empty = text only."""
    if not isinstance(weights, dict):
        raise InputError(f"condition mode weights must be a mapping {{mode: weight}}, got {weights!r}")
    unknown = set(weights) - set(MODES)
    if unknown:
        raise InputError(f"unknown condition modes: {', '.join(map(str, sorted(unknown, key=str)))}; "
                         f"choose from {', '.join(MODES)}")
    if not all(isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w) and 0 <= w <= 1e6
               for w in weights.values()):
        raise InputError(f"condition mode weights must be finite numbers in [0, 1e6], got {weights}")
    # in MODES order, whatever order the mapping was written in (state.json sorts its keys), so the
    # same random draw picks the same mode in a resumed run
    out = {m: float(weights[m]) for m in MODES if m in weights}
    if out and sum(out.values()) <= 0:
        raise InputError(f"condition mode weights must have a positive sum, got {weights}")
    return out


def mode_mask(mode: str, frames: int, height: int, width: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """One sample's mask (T_lat, h, w) for `mode`, its free choices (k, keyframes, box) drawn from
    `generator`. Modes that need more latent frames than there are fall back to fewer conditions
    (one frame: image is the only frame-wise condition)."""
    m = torch.zeros(frames, height, width, dtype=torch.bool)

    def randint(lo: int, hi: int) -> int:  # inclusive
        return int(torch.randint(lo, hi + 1, (), generator=generator))

    if mode == "image":
        m[0] = True
    elif mode == "extend":
        m[: randint(1, max(1, frames - 1))] = True
    elif mode == "interpolate":
        m[[0, -1]] = True
    elif mode == "keyframes":
        picked = torch.rand(frames, generator=generator) < 0.4
        picked[randint(0, frames - 1)] = True  # at least one
        if frames > 1 and picked.all():
            picked[randint(0, frames - 1)] = False  # and something left to generate
        m[picked] = True
    elif mode == "inpaint":
        bh, bw = randint(1, max(1, height - 1)), randint(1, max(1, width - 1))
        y, x = randint(0, height - bh), randint(0, width - bw)
        m[:] = True
        m[:, y:y + bh, x:x + bw] = False
    elif mode != "text":
        raise InputError(f"unknown condition mode {mode!r}; choose from {', '.join(MODES)}")
    return m


def sample_masks(batch: int, frames: int, height: int, width: int, weights: dict,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, list[str]]:
    """A mask per sample (B, T_lat, h, w) and the mode each was drawn from, modes drawn with
    probabilities proportional to `weights` ({mode: weight}; empty = all text-to-video)."""
    weights = check_weights(weights)
    if not weights:
        return torch.zeros(batch, frames, height, width, dtype=torch.bool), ["text"] * batch
    names = list(weights)
    p = torch.tensor([weights[n] for n in names])
    modes = [names[int(i)] for i in torch.multinomial(p, batch, replacement=True, generator=generator)]
    return torch.stack([mode_mask(m, frames, height, width, generator) for m in modes]), modes


def to_latent(mask: torch.Tensor, patch: int) -> torch.Tensor:
    """A token mask (B, T, h, w) at latent resolution (B, T, h * patch, w * patch)."""
    return mask.repeat_interleave(patch, -2).repeat_interleave(patch, -1)


def to_tokens(mask: torch.Tensor, patch: int) -> torch.Tensor:
    """A latent-resolution condition mask (B, T, H, W) on the token grid: a token is a condition
    only if all its latent positions are (a partly given token is generated whole)."""
    B, T, H, W = mask.shape
    return mask.view(B, T, H // patch, patch, W // patch, patch).all(5).all(3)
