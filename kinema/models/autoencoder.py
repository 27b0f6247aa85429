"""The causal video autoencoder: frame 0 alone, then 4 frames per latent frame, 8x8 spatial.

Videos (B, 3, T, H, W) in [-1, 1] with T = 4k + 1 map to latents (B, C, 1 + (T-1)/4, H/8, W/8),
so a still image (T = 1) and a video share one latent space.

1. Causal convolutions: in time a (kt, 3, 3) kernel sees only the current and past frames
   (frame 0 is replicated into the past). Normalisation is per frame. So every output frame
   depends only on the frames up to it.
2. Down in time by 2, twice: frame 0 stays alone, later frames are folded in pairs into the
   channels and mixed by a 1x1 convolution (space-to-depth in time); up in time is the inverse.
   Down and up in space by 2, three times: strided / nearest-neighbour convolutions per frame.
3. A KL-regularised latent (mean and log-variance), normalised by per-channel statistics.
4. Shortcuts (DC-AE, Chen et al. 2024): every down-sampling adds a parameter-free
   space-to-channel (or time-to-channel) rearrangement averaged down to the output width, and
   every up-sampling the inverse (channels duplicated, then channel-to-space). A fresh model
   starts near "block average, then upsample" instead of "predict the mean colour", which makes
   a 4x8x8 compressing autoencoder far quicker to train (benchmarks/autoencoder_recipes.py).
5. Chunked encode and decode: the time axis is processed a chunk at a time, every causal
   convolution carrying its last kt - 1 input frames to the next chunk (the feature cache), so
   memory stays flat and the result equals processing the whole video at once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from ..errors import InputError
from . import flag, one_of, real, whole, whole_list
from ..video import check_frames


@dataclass
class AutoencoderConfig:
    latent_channels: int = 8
    base_channels: int = 32
    channel_mult: tuple = (1, 2, 4, 4)  # widths at full, 1/2, 1/4 and 1/8 resolution
    temporal_kernel: tuple = (1, 3, 3, 3)  # causal kernel length in time at each resolution
    patch: int = 1  # 2: space-to-depth at the input (and back at the output), so no full-resolution convs
    kl_weight: float = 1e-6
    l1_weight: float = 1.0
    mse_weight: float = 1.0
    shortcuts: bool = True  # DC-AE parameter-free shortcuts around every resampling and the latent
    logvar_init: float = -10.0  # initial posterior log-variance: start near a plain autoencoder

    def __post_init__(self):
        o = "autoencoder"
        whole(o, "latent_channels", self.latent_channels, 1, 1024)
        whole(o, "base_channels", self.base_channels, 1, 1024)
        # 4 entries: full, 1/2, 1/4, 1/8 resolution
        self.channel_mult = tuple(whole_list(o, "channel_mult", self.channel_mult, 1, 64, range(4, 5)))
        self.temporal_kernel = tuple(whole_list(o, "temporal_kernel", self.temporal_kernel, 1, 9, range(4, 5)))
        one_of(o, "patch", self.patch, (1, 2))
        for name in ("kl_weight", "l1_weight", "mse_weight"):
            real(o, name, getattr(self, name), 0, 1e6)
        flag(o, "shortcuts", self.shortcuts)
        real(o, "logvar_init", self.logvar_init, -30, 20)  # moments() clamps the log-variance to this range
        widths = [self.base_channels * m for m in self.channel_mult]
        if any(w > 8 and w % 8 for w in widths):  # GroupNorm(min(8, w), w) needs it
            raise InputError(f"autoencoder widths base_channels x channel_mult = {widths} must each be under 8 "
                             f"or a multiple of 8")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "AutoencoderConfig":
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise InputError(f"unknown autoencoder config keys: {', '.join(sorted(unknown))}")
        return cls(**d)


# ------------------------------------------------------------------ causal building blocks

def per_frame(fn, x: torch.Tensor) -> torch.Tensor:
    """Apply a 2D op to every frame: (B, C, T, H, W) -> fold T into the batch -> back."""
    B = x.shape[0]
    y = fn(rearrange(x, "b c t h w -> (b t) c h w"))
    return rearrange(y, "(b t) c h w -> b c t h w", b=B)


def channel_average(x: torch.Tensor, cout: int) -> torch.Tensor | None:
    """Average consecutive groups of channels down to `cout` (None if the widths do not divide)."""
    cin = x.shape[1]
    return x.unflatten(1, (cout, cin // cout)).mean(2) if cin % cout == 0 else None


def channel_repeat(x: torch.Tensor, cout: int) -> torch.Tensor | None:
    """Repeat every channel up to `cout` (None if the widths do not divide)."""
    cin = x.shape[1]
    return x.repeat_interleave(cout // cin, dim=1) if cout % cin == 0 else None


def add_shortcut(y: torch.Tensor, shortcut: torch.Tensor | None) -> torch.Tensor:
    return y if shortcut is None else y + shortcut


class CausalConv3d(nn.Module):
    """(kt, 3, 3) convolution that pads time only from the past (frame 0 replicated, or the
    previous chunk's last kt - 1 frames from `cache`)."""

    def __init__(self, cin: int, cout: int, kt: int = 3):
        super().__init__()
        self.kt = kt
        self.conv = nn.Conv3d(cin, cout, (kt, 3, 3), padding=(0, 1, 1)) if kt > 1 else nn.Conv2d(cin, cout, 3, padding=1)

    def forward(self, x: torch.Tensor, cache: dict | None = None) -> torch.Tensor:
        if self.kt == 1:
            return per_frame(self.conv, x)
        past = cache.get(id(self)) if cache is not None else None
        if past is None:
            past = x[:, :, :1].expand(-1, -1, self.kt - 1, -1, -1)
        x = torch.cat([past, x], dim=2)
        if cache is not None:
            cache[id(self)] = x[:, :, -(self.kt - 1):].detach()
        return self.conv(x)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, kt: int):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(min(8, cin), cin), CausalConv3d(cin, cout, kt)
        self.norm2, self.conv2 = nn.GroupNorm(min(8, cout), cout), CausalConv3d(cout, cout, kt)
        self.skip = nn.Conv3d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, cache=None):
        h = self.conv1(F.silu(per_frame(self.norm1, x)), cache)
        h = self.conv2(F.silu(per_frame(self.norm2, h)), cache)
        return self.skip(x) + h


class TimeDown(nn.Module):
    """Halve the frames after frame 0: pairs (1, 2), (3, 4), ... are folded into channels."""

    def __init__(self, channels: int, shortcut: bool = False):
        super().__init__()
        self.mix = nn.Conv3d(2 * channels, channels, 1)
        self.shortcut = shortcut  # + the mean of each pair

    def _mix(self, folded):
        short = channel_average(folded, folded.shape[1] // 2) if self.shortcut else None
        return add_shortcut(self.mix(folded), short)

    def forward(self, x, cache=None):
        first = cache is None or id(self) not in cache
        if cache is not None:
            cache[id(self)] = True
        head, rest = (x[:, :, :1], x[:, :, 1:]) if first else (None, x)
        if rest.shape[2] % 2:
            raise InputError("chunk boundaries must fall on groups of 4 frames")
        out = self._mix(rearrange(rest, "b c (t two) h w -> b (c two) t h w", two=2)) if rest.shape[2] else rest
        if head is not None:
            out = torch.cat([self._mix(torch.stack([head, head], 2).flatten(1, 2)), out], 2)
        return out


class TimeUp(nn.Module):
    """Inverse of TimeDown: frame 0 stays one frame, every later frame becomes two."""

    def __init__(self, channels: int, shortcut: bool = False):
        super().__init__()
        self.split = nn.Conv3d(channels, 2 * channels, 1)
        self.shortcut = shortcut  # + every frame copied to both of its output frames

    def forward(self, x, cache=None):
        first = cache is None or id(self) not in cache
        if cache is not None:
            cache[id(self)] = True
        y = add_shortcut(self.split(x), channel_repeat(x, 2 * x.shape[1]) if self.shortcut else None)
        unfold = lambda v: rearrange(v, "b (c two) t h w -> b c (t two) h w", two=2)  # noqa: E731
        if first:
            head = y[:, 0::2, :1]
            return torch.cat([head, unfold(y[:, :, 1:])], 2)
        return unfold(y)


class SpaceDown(nn.Module):
    def __init__(self, cin, cout, shortcut: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride=2, padding=1)
        self.cout, self.shortcut = cout, shortcut  # + space-to-channel, averaged down to cout

    def _down(self, f):
        short = channel_average(F.pixel_unshuffle(f, 2), self.cout) if self.shortcut else None
        return add_shortcut(self.conv(f), short)

    def forward(self, x, cache=None):
        return per_frame(self._down, x)


class SpaceUp(nn.Module):
    def __init__(self, cin, cout, shortcut: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)
        self.cout, self.shortcut = cout, shortcut  # + channels repeated to 4 cout, then channel-to-space

    def _up(self, f):
        y = self.conv(F.interpolate(f, scale_factor=2.0, mode="nearest"))
        short = channel_repeat(f, 4 * self.cout) if self.shortcut else None
        return add_shortcut(y, None if short is None else F.pixel_shuffle(short, 2))

    def forward(self, x, cache=None):
        return per_frame(self._up, x)


class Sequence(nn.ModuleList):
    def forward(self, x, cache=None):
        for layer in self:
            x = layer(x, cache)
        return x


# ------------------------------------------------------------------ the autoencoder

class VideoAutoencoder(nn.Module):
    """Causal video VAE: `encode` (B, 3, T, H, W) -> (B, C, 1 + (T-1)/4, H/8, W/8), `decode` back."""

    def __init__(self, config: AutoencoderConfig):
        super().__init__()
        self.config = c = config
        ch = [c.base_channels * m for m in c.channel_mult]
        kt = c.temporal_kernel
        f = c.patch // 2  # first resolution level with convolutions: 0 (full) or 1 (half, after space-to-depth)
        sc = c.shortcuts
        enc = [CausalConv3d(3 * c.patch**2, ch[f], kt[f])]
        for i in range(f, 3):  # down in space at every level, in time at the last two
            enc += [ResBlock(ch[i], ch[i], kt[i]), SpaceDown(ch[i], ch[i + 1], sc)]
            enc += [TimeDown(ch[i + 1], sc)] if i else []
        self.encoder = Sequence(enc + [ResBlock(ch[3], ch[3], kt[3]), ResBlock(ch[3], ch[3], kt[3])])
        self.enc_out = nn.Sequential(nn.GroupNorm(min(8, ch[3]), ch[3]), nn.SiLU())
        self.to_moments = CausalConv3d(ch[3], 2 * c.latent_channels, kt[3])
        self.from_latent = CausalConv3d(c.latent_channels, ch[3], kt[3])
        dec = [ResBlock(ch[3], ch[3], kt[3]), ResBlock(ch[3], ch[3], kt[3])]
        for i in range(3, f, -1):
            dec += ([TimeUp(ch[i], sc)] if i >= 2 else []) + [SpaceUp(ch[i], ch[i - 1], sc),
                                                               ResBlock(ch[i - 1], ch[i - 1], kt[i - 1])]
        self.decoder = Sequence(dec)
        self.dec_out = nn.Sequential(nn.GroupNorm(min(8, ch[f]), ch[f]), nn.SiLU())
        self.to_rgb = CausalConv3d(ch[f], 3 * c.patch**2, kt[f])
        with torch.no_grad():
            self.to_moments.conv.bias[c.latent_channels:].fill_(c.logvar_init)
        self.register_buffer("latent_mean", torch.zeros(c.latent_channels))
        self.register_buffer("latent_std", torch.ones(c.latent_channels))

    # -- shapes
    @staticmethod
    def check_video(x: torch.Tensor) -> None:
        if x.ndim != 5 or x.shape[1] != 3:
            raise InputError(f"videos must be (B, 3, T, H, W), got {tuple(x.shape)}")
        check_frames(x.shape[2])
        for name, n in (("height", x.shape[3]), ("width", x.shape[4])):
            if n % 8 or n == 0:
                lo = n // 8 * 8
                raise InputError(f"{name} {n} is not divisible by 8; nearest valid: "
                                 f"{f'{lo} or ' if lo else ''}{lo + 8}")

    # -- encode
    def moments(self, x: torch.Tensor, cache: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.config.patch > 1:  # space-to-depth: no convolution at full resolution
            x = per_frame(lambda f: F.pixel_unshuffle(f, self.config.patch), x)
        h = self.encoder(x, cache)
        mean, logvar = self.to_moments(per_frame(self.enc_out, h), cache).chunk(2, 1)
        if self.config.shortcuts:
            mean = add_shortcut(mean, channel_average(h, mean.shape[1]))
        return mean, logvar.clamp(-30, 20)

    def encode(self, x: torch.Tensor, chunk_frames: int | None = None, normalize: bool = True) -> torch.Tensor:
        """Latent means (normalised per channel unless normalize=False). `chunk_frames` (a multiple
        of 4) bounds memory: frame 0 plus chunk_frames frames first, then chunk_frames at a time."""
        self.check_video(x)
        if chunk_frames is None or x.shape[2] <= 1 + chunk_frames:
            z = self.moments(x)[0]
        else:
            if chunk_frames % 4:
                raise InputError(f"chunk_frames must be a multiple of 4, got {chunk_frames}")
            cache: dict = {}
            starts = [0, *range(1 + chunk_frames, x.shape[2], chunk_frames)]
            ends = starts[1:] + [x.shape[2]]
            z = torch.cat([self.moments(x[:, :, a:b], cache)[0] for a, b in zip(starts, ends)], 2)
        return self.normalize(z) if normalize else z

    def normalize(self, z):
        return (z - self.latent_mean.view(1, -1, 1, 1, 1)) / self.latent_std.view(1, -1, 1, 1, 1)

    def denormalize(self, z):
        return z * self.latent_std.view(1, -1, 1, 1, 1) + self.latent_mean.view(1, -1, 1, 1, 1)

    @torch.no_grad()
    def set_latent_stats(self, raw_latents: torch.Tensor) -> None:
        """Per-channel mean and std of un-normalised latents (B, C, T, H, W)."""
        self.latent_mean.copy_(raw_latents.mean((0, 2, 3, 4)))
        self.latent_std.copy_(raw_latents.std((0, 2, 3, 4)).clamp(min=1e-4))

    # -- decode
    def _decode(self, z: torch.Tensor, cache: dict | None = None) -> torch.Tensor:
        h = self.from_latent(z, cache)
        if self.config.shortcuts:
            h = add_shortcut(h, channel_repeat(z, h.shape[1]))
        h = self.decoder(h, cache)
        out = self.to_rgb(per_frame(self.dec_out, h), cache)
        return per_frame(lambda f: F.pixel_shuffle(f, self.config.patch), out) if self.config.patch > 1 else out

    def decode(self, z: torch.Tensor, chunk_latent_frames: int | None = None) -> torch.Tensor:
        """Videos (B, 3, 1 + 4 (T_lat - 1), 8 H_lat, 8 W_lat) from normalised latents."""
        z = self.denormalize(z)
        if chunk_latent_frames is None or z.shape[2] <= 1 + chunk_latent_frames:
            return self._decode(z)
        cache: dict = {}
        starts = [0, *range(1 + chunk_latent_frames, z.shape[2], chunk_latent_frames)]
        ends = starts[1:] + [z.shape[2]]
        return torch.cat([self._decode(z[:, :, a:b], cache) for a, b in zip(starts, ends)], 2)

    # -- training
    def loss(self, x: torch.Tensor, generator: torch.Generator | None = None, anchor=None):
        """Weighted L1 + MSE reconstruction of a posterior sample, plus kl_weight x KL to N(0, I).
        `anchor` = (target, keep, weight): adds weight x the mean squared distance, in normalised
        units, between the latent means of the clips `keep` (a bool per clip) and `target`."""
        mean, logvar = self.moments(x)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        z = mean + (0.5 * logvar).exp() * noise
        rec = self._decode(z)
        l1, mse = (rec - x).abs().mean(), (rec - x).pow(2).mean()
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).mean()
        c = self.config
        total = c.l1_weight * l1 + c.mse_weight * mse + c.kl_weight * kl
        parts = {"l1": l1.detach(), "mse": mse.detach(), "kl": kl.detach()}
        if anchor is not None:
            target, keep, weight = anchor
            drift = ((self.normalize(mean[keep].float()) - target) ** 2).mean() if keep.any() else mean.sum() * 0
            total = total + weight * drift
            parts["anchor"] = drift.detach()
        return total, parts

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None, anchor=None):
        """The training loss (so DDP sees a forward call): see `loss`."""
        return self.loss(x, generator, anchor)
