"""The video diffusion transformer: latents, per-frame timesteps and text in, velocity out.

A DiT (Peebles & Xie, 2023) over video latents, in the spirit of LTX-Video, Wan and Open-Sora:

1. patchify: latents (B, C, T, H, W) are cut into (1, p, p) patches, one token each, by a Linear;
2. condition: every latent frame has its own timestep. Its sinusoidal embedding through an MLP,
   plus a pooled text vector, is that frame's conditioning vector c (B, T, dim); tokens are kept
   grouped by frame, (B, T, S, dim), so c broadcasts to its frame's S tokens without loops.
   Condition tokens (an image, the end of a clip, the kept part of an edited frame; `clean`) take
   the conditioning of t = 0 instead, token by token;
3. blocks: adaLN-Zero self-attention over all tokens (3D RoPE on q and k, QK-norm), then
   cross-attention to the text tokens (padding masked), then an adaLN-Zero GELU MLP;
4. final layer: adaLN + a zero-initialised Linear back to patches, then unpatchify.

Every residual branch and the output layer start at zero: a fresh block is the identity and a
fresh model predicts velocity 0. Flow matching: x_t = (1 - t) x0 + t eps, target eps - x0.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange
from torch.utils.checkpoint import checkpoint

from ..errors import InputError
from . import flag, one_of, real, whole


PATCHES = (1, 2, 4)  # latent patch sizes: a token is (1, p, p) latents


@dataclass
class TransformerConfig:
    """Sizes of a VideoTransformer; latents are patchified (1, patch, patch)."""

    latent_channels: int = 8
    patch: int = 2
    dim: int = 384
    depth: int = 8
    heads: int = 6
    mlp_ratio: float = 4.0
    text_dim: int = 384
    qk_norm: bool = True
    freq_dim: int = 256  # sinusoidal timestep features
    rope_theta: float = 10000.0
    pool_text: bool = True  # add the masked mean of the text tokens to every frame's c
    # REPA (Yu et al. 2024), training only: a projector of the tokens after `align_depth` blocks to
    # `align_dim` features of a frozen encoder (kinema.repa); 0 = none. Export drops it.
    align_dim: int = 0
    align_depth: int = 2

    def __post_init__(self):
        o = "transformer"
        whole(o, "latent_channels", self.latent_channels, 1, 1024)
        one_of(o, "patch", self.patch, PATCHES)
        whole(o, "dim", self.dim, 6, 16384)
        whole(o, "depth", self.depth, 1, 256)
        whole(o, "heads", self.heads, 1, 256)
        real(o, "mlp_ratio", self.mlp_ratio, 0, 16, open_lo=True)
        whole(o, "text_dim", self.text_dim, 1, 16384)
        flag(o, "qk_norm", self.qk_norm)
        whole(o, "freq_dim", self.freq_dim, 2, 16384)
        real(o, "rope_theta", self.rope_theta, 1, 1e9, open_lo=True)
        flag(o, "pool_text", self.pool_text)
        whole(o, "align_dim", self.align_dim, 0, 16384)
        whole(o, "align_depth", self.align_depth, 1, self.depth if self.align_dim else 256)  # only read with a projector
        head_dim = self.dim // self.heads
        if self.dim % self.heads or head_dim % 2 or head_dim < 6:
            raise InputError(f"transformer dim {self.dim} / heads {self.heads} must give an even head dim >= 6 "
                             f"(for 3D RoPE), e.g. dim 384 with 6 heads")
        if self.freq_dim % 2:
            raise InputError(f"transformer freq_dim must be even (cos and sin features), got {self.freq_dim}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TransformerConfig:
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise InputError(f"unknown transformer config keys: {', '.join(sorted(unknown))}")
        return cls(**d)


# DiT-like widths (head dim 64); depths chosen so S ~ 25M, B ~ 110M, L ~ 420M parameters.
MODELS = {
    "tiny": TransformerConfig(dim=32, depth=2, heads=2, freq_dim=32),
    "S": TransformerConfig(dim=384, depth=8, heads=6),
    "B": TransformerConfig(dim=640, depth=12, heads=10),
    "L": TransformerConfig(dim=1024, depth=18, heads=16),
}


# ------------------------------------------------------------------ embeddings
def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal features of t in [0, 1] (scaled by 1000, as in DDPM/DiT): (...) -> (..., dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = 1000.0 * t.float()[..., None] * freqs
    return torch.cat([args.cos(), args.sin()], -1)


def rope_split(head_dim: int) -> tuple[int, int, int]:
    """How a head's dims are shared among the (t, h, w) axes: h and w get equal even parts, t the rest."""
    hw = 2 * (head_dim // 6)
    return head_dim - 2 * hw, hw, hw


def grid_positions(frames: int, height: int, width: int, device=None) -> torch.Tensor:
    """Integer (t, h, w) coordinates of every token in patchify order: (frames * height * width, 3)."""
    axes = [torch.arange(n, device=device, dtype=torch.float32) for n in (frames, height, width)]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)


def rope_angles(pos: torch.Tensor, head_dim: int, theta: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin, each (N, head_dim // 2), of the rotary angles for token positions pos (N, 3)."""
    angles = []
    for axis, size in enumerate(rope_split(head_dim)):
        inv_freq = theta ** (-torch.arange(0, size, 2, device=pos.device, dtype=torch.float32) / size)
        angles.append(pos[:, axis, None].float() * inv_freq)
    a = torch.cat(angles, -1)
    return a.cos(), a.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each pair (x[i], x[i + d/2]) of x (..., N, d) by angle i; in float32, returned in x's dtype."""
    x1, x2 = x.float().chunk(2, -1)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], -1).type_as(x)


# ------------------------------------------------------------------ layers
EXPLICIT_MAX_SCORES = 320 * 320  # per head; see `attention`


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v over (B, h, N, d) tensors; `mask` (bool, True = attend) broadcasts
    to (B, h, N, L). On CPU, short sequences use the explicit three-op form: PyTorch's CPU
    flash-attention kernel has a slow backward for them (a training step of the shapes-64 model,
    80 tokens: self-attention forward+backward 7.3 ms fused vs 1.4 ms explicit, cross-attention to
    20 text tokens 5.5 vs 0.7 ms; the fused kernel wins from ~512 tokens on). Elsewhere: SDPA."""
    if q.device.type != "cpu" or q.shape[-2] * k.shape[-2] > EXPLICIT_MAX_SCORES:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    scores = (q @ k.transpose(-1, -2)).float() * q.shape[-1] ** -0.5
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(-1).to(v.dtype) @ v


class Attention(nn.Module):
    """Multi-head attention (SDPA) with per-head RMS QK-norm; self-attention when context is None."""

    def __init__(self, dim: int, heads: int, qk_norm: bool):
        super().__init__()
        self.heads = heads
        self.q, self.kv, self.out = nn.Linear(dim, dim), nn.Linear(dim, 2 * dim), nn.Linear(dim, dim)
        norm = (lambda: nn.RMSNorm(dim // heads, eps=1e-6)) if qk_norm else nn.Identity
        self.q_norm, self.k_norm = norm(), norm()

    def keys_values(self, x: torch.Tensor, rope=None) -> tuple[torch.Tensor, torch.Tensor]:
        """k (normed, rotated) and v of x (B, L, dim), each (B, heads, L, head_dim), in v's dtype."""
        k, v = rearrange(self.kv(x), "b n (k h d) -> k b h n d", k=2, h=self.heads)
        k = self.k_norm(k.float())  # norm and rotate in float32 (bf16 autocast)
        return (k if rope is None else apply_rope(k, *rope)).to(v.dtype), v

    def forward(self, x, context=None, rope=None, mask=None, kv=None):
        """Self-attention (context None), or cross-attention to `context` (B, L, dim) or to its
        precomputed `kv` (from keys_values: constant text is projected once per video, not per step)."""
        q = self.q_norm(rearrange(self.q(x), "b n (h d) -> b h n d", h=self.heads).float())
        if rope is not None:
            q = apply_rope(q, *rope)
        k, v = kv if kv is not None else self.keys_values(x if context is None else context, rope)
        out = attention(q.to(v.dtype), k, v, mask)
        return self.out(rearrange(out, "b h n d -> b n (h d)"))


def modulation(ada: nn.Module, c: torch.Tensor, c_clean: torch.Tensor | None, clean: torch.Tensor | None):
    """adaLN parameters per frame (B, T, 1, k), or per token (B, T, S, k) where condition tokens
    (`clean`, (B, T, S, 1)) take those of c_clean (the t = 0 conditioning, (B, 1, D)): a token's
    timestep is its frame's or 0, so two evaluations of `ada` serve any mask."""
    m = ada(c).unsqueeze(2)
    return m if clean is None else torch.where(clean, ada(c_clean).unsqueeze(2), m)


class Block(nn.Module):
    """adaLN-Zero DiT block: modulated self-attention (RoPE), cross-attention to text, modulated MLP."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        d, hidden = cfg.dim, int(cfg.dim * cfg.mlp_ratio)
        self.norm1 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(d, cfg.heads, cfg.qk_norm)
        self.norm2 = nn.LayerNorm(d, eps=1e-6)
        self.cross = Attention(d, cfg.heads, cfg.qk_norm)
        self.norm3 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        # exact (erf) GELU: on CPU in bf16 the tanh form runs 3x slower (250 vs 77 us on 160 x 1024),
        # and the two differ by 0.08% of a trained model's output, 16x less than bf16 rounding
        self.mlp = nn.Sequential(nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, d))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(d, 6 * d))  # zero-initialised

    def forward(self, x, c, rope, text_kv, text_mask, text_gate, c_clean=None, clean=None):
        """x (B, T, S, D) tokens grouped by frame; c (B, T, D) per-frame conditioning, broadcast over
        S; where `clean` (B, T, S, 1) is True, c_clean (B, 1, D) instead (see `modulation`).
        text_kv: this block's cross-attention keys and values of the text (TextContext)."""
        B, T, S, D = x.shape
        shift1, scale1, gate1, shift2, scale2, gate2 = modulation(self.ada, c, c_clean, clean).chunk(6, -1)
        h = (self.norm1(x) * (1 + scale1) + shift1).reshape(B, T * S, D)
        x = x + gate1 * self.attn(h, rope=rope).view(B, T, S, D)
        h = self.norm2(x).reshape(B, T * S, D)
        x = x + text_gate * self.cross(h, mask=text_mask, kv=text_kv).view(B, T, S, D)
        return x + gate2 * self.mlp(self.norm3(x) * (1 + scale2) + shift2)


# ------------------------------------------------------------------ the model
@dataclass
class TextContext:
    """The text's part of a forward pass, constant over the sampling steps of a video: each block's
    cross-attention keys and values, the attention mask (B, 1, 1, L), the gate that zeroes the
    cross-attention of rows without text (B, 1, 1, 1), and the pooled text vector (B, 1, D) or None."""

    kv: list[tuple[torch.Tensor, torch.Tensor]]
    mask: torch.Tensor
    gate: torch.Tensor
    pooled: torch.Tensor | None


class VideoTransformer(nn.Module):
    """Predicts the flow-matching velocity for video latents; see the module docstring."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.config = c = config
        patch_dim = c.patch * c.patch * c.latent_channels
        self.patch_embed = nn.Linear(patch_dim, c.dim)
        self.time_embed = nn.Sequential(nn.Linear(c.freq_dim, c.dim), nn.SiLU(), nn.Linear(c.dim, c.dim))
        self.text_embed = nn.Sequential(
            nn.Linear(c.text_dim, c.dim), nn.GELU(), nn.Linear(c.dim, c.dim))
        self.text_pool = nn.Linear(c.dim, c.dim) if c.pool_text else None
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.depth))
        self.final_norm = nn.LayerNorm(c.dim, elementwise_affine=False, eps=1e-6)
        self.final_ada = nn.Sequential(nn.SiLU(), nn.Linear(c.dim, 2 * c.dim))
        self.final = nn.Linear(c.dim, patch_dim)
        self.gradient_checkpointing = False  # recompute blocks in backward to save activation memory
        self._init_weights()
        self.align = nn.Sequential(nn.Linear(c.dim, 2 * c.dim), nn.SiLU(), nn.Linear(2 * c.dim, 2 * c.dim), nn.SiLU(),
                                   nn.Linear(2 * c.dim, c.align_dim)) if c.align_dim else None

    def _init_weights(self):
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        zero = [self.final_ada[-1], self.final] + [layer for b in self.blocks for layer in (b.ada[-1], b.cross.out)]
        for layer in zero:  # adaLN-Zero: every residual branch and the output start at 0
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def text_context(self, text: torch.Tensor, text_mask: torch.Tensor | None = None) -> TextContext:
        """Everything the text contributes to a forward pass, which does not change from one sampling
        step to the next: text states (B, L, text_dim) and mask (B, L), True = real token (None: all)."""
        if text.ndim != 3 or text.shape[2] != self.config.text_dim:
            raise InputError(f"text must be (B, L, {self.config.text_dim}), got {tuple(text.shape)}")
        if text_mask is not None and tuple(text_mask.shape) != tuple(text.shape[:2]):
            raise InputError(f"text_mask must be (B, L) = {tuple(text.shape[:2])}, got {tuple(text_mask.shape)}")
        B = text.shape[0]
        real = torch.ones(text.shape[:2], dtype=torch.bool, device=text.device)
        mask = real if text_mask is None else text_mask.bool()
        text = self.text_embed(text)
        pooled = None
        if self.text_pool is not None:  # masked mean of the real tokens (zero when there are none)
            total = torch.where(mask[..., None], text, 0).sum(1)
            pooled = self.text_pool(total / mask.sum(1, keepdim=True).clamp(min=1)).unsqueeze(1)
        # A row with no real token would make attention return NaN: let it attend anywhere, then gate it to 0.
        has_text = mask.any(1)
        return TextContext(kv=[block.cross.keys_values(text) for block in self.blocks],
                           mask=(mask | ~has_text[:, None])[:, None, None, :],
                           gate=has_text.to(text.dtype).view(B, 1, 1, 1), pooled=pooled)

    def forward(self, x: torch.Tensor, t: torch.Tensor, text: torch.Tensor | TextContext,
                text_mask: torch.Tensor | None = None, clean: torch.Tensor | None = None, align: bool = False):
        """Velocity eps - x0, shaped like x (B, C, T, H, W), at per-frame timesteps t (B, T) in [0, 1],
        given text states (B, L, text_dim) and text_mask (B, L) bool, True = real token (None: all real),
        or their `text_context` (samplers compute it once per video).
        `clean` (B, T, H / patch, W / patch) bool marks condition tokens (kinema.diffusion.masks):
        their timestep is 0 whatever their frame's t. `align` (a model with a REPA projector): also
        return the projected tokens after `align_depth` blocks, (B, T, H / patch * W / patch, align_dim)."""
        cfg, p = self.config, self.config.patch
        ctx = text if isinstance(text, TextContext) else self.text_context(text, text_mask)
        B, T, H, W = self._check(x, t, ctx, clean)

        h = self.patch_embed(rearrange(x, "b c t (h p) (w q) -> b t (h w) (p q c)", p=p, q=p))  # (B, T, S, D)
        if clean is not None:  # one more "frame" at t = 0: the conditioning of clean tokens
            t = torch.cat([t, t.new_zeros(B, 1)], 1)
        c = self.time_embed(timestep_embedding(t, cfg.freq_dim).to(h.dtype))  # (B, T, D): one per frame
        if ctx.pooled is not None:
            c = c + ctx.pooled
        c_clean = None
        if clean is not None:
            c, c_clean, clean = c[:, :T], c[:, T:], clean.reshape(B, T, -1, 1).to(c.device)
        rope = rope_angles(grid_positions(T, H // p, W // p, device=x.device), cfg.dim // cfg.heads, cfg.rope_theta)

        if align and self.align is None:
            raise InputError("this transformer has no REPA projector (config align_dim is 0)")
        aligned = None
        for i, (block, kv) in enumerate(zip(self.blocks, ctx.kv)):
            if self.gradient_checkpointing and torch.is_grad_enabled():
                h = checkpoint(block, h, c, rope, kv, ctx.mask, ctx.gate, c_clean, clean, use_reentrant=False)
            else:
                h = block(h, c, rope, kv, ctx.mask, ctx.gate, c_clean, clean)
            if align and i + 1 == cfg.align_depth:
                aligned = self.align(h)
        shift, scale = modulation(self.final_ada, c, c_clean, clean).chunk(2, -1)
        out = self.final(self.final_norm(h) * (1 + scale) + shift)
        out = rearrange(out, "b t (h w) (p q c) -> b c t (h p) (w q)", h=H // p, p=p, q=p)
        return (out, aligned) if align else out

    def _check(self, x, t, ctx: TextContext, clean=None) -> tuple[int, int, int, int]:
        cfg, p = self.config, self.config.patch
        if x.ndim != 5 or x.shape[1] != cfg.latent_channels:
            raise InputError(f"latents must be (B, {cfg.latent_channels}, T, H, W), got {tuple(x.shape)}")
        B, _, T, H, W = x.shape
        for name, n in (("height", H), ("width", W)):
            if n % p:
                lo = n // p * p
                nearest = f"{lo} or {lo + p}" if lo else f"{lo + p}"
                raise InputError(f"latent {name} {n} is not divisible by the patch size {p}; "
                                 f"nearest valid latent {name}s: {nearest}")
        if tuple(t.shape) != (B, T):
            raise InputError(f"t must be (B, T_lat) = ({B}, {T}), one timestep per latent frame; got {tuple(t.shape)}")
        if ctx.mask.shape[0] != B:
            raise InputError(f"text must have one row per video: got {ctx.mask.shape[0]} for a batch of {B}")
        if clean is not None and tuple(clean.shape) != (B, T, H // p, W // p):
            raise InputError(f"clean must be (B, T, H / patch, W / patch) = {(B, T, H // p, W // p)}, "
                             f"got {tuple(clean.shape)}")
        return B, T, H, W


# ------------------------------------------------------------------ zoo
def _config(name_or_config, **overrides) -> TransformerConfig:
    if isinstance(name_or_config, dict):
        name_or_config = TransformerConfig.from_dict(name_or_config)
    if isinstance(name_or_config, TransformerConfig):
        config = name_or_config
    elif name_or_config in MODELS:
        config = MODELS[name_or_config]
    else:
        raise InputError(f"unknown transformer {name_or_config!r}; choose from {', '.join(MODELS)}")
    unknown = set(overrides) - {f.name for f in fields(TransformerConfig)}
    if unknown:
        raise InputError(f"unknown transformer config keys: {', '.join(sorted(unknown))}")
    return dataclasses.replace(config, **overrides)


def create(name_or_config: str | TransformerConfig | dict = "S", **overrides) -> VideoTransformer:
    """A freshly initialised VideoTransformer from a zoo name ("tiny", "S", "B", "L"), a config or
    its dict, with field overrides: create("S", depth=4)."""
    return VideoTransformer(_config(name_or_config, **overrides))


def param_count(name_or_config: str | TransformerConfig | dict, **overrides) -> int:
    """Number of parameters, counted on the meta device (nothing is allocated)."""
    with torch.device("meta"):
        return create(name_or_config, **overrides).num_params()
