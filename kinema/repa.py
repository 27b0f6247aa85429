"""Representation alignment (REPA; Yu et al. 2024, "Representation Alignment for Generation"):
while the transformer learns to denoise, a small projector of its tokens after a few blocks is
pulled toward a frozen encoder's features of the clean clip, so early blocks learn what is where
from a model that already knows, instead of only from the denoising loss.

kinema's frozen encoder is its own video classifier (kinema/assets/classifier): its last map
(B, 256, frames, H / 16, W / 16) holds per-cell features that its object queries read colour,
shape, size and motion from, per object. `Targets` turns a clip into one target per transformer
token: layer-normed cells (what the queries read), averaged over the frames each latent frame
holds (frame 0 alone, then groups of 4, as the causal autoencoder folds them), resized to the
token grid (a token is 8 x patch pixels a side; the map is 16). `loss` is REPA's: one minus the
cosine similarity, averaged over tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange

from .limits import SPATIAL, TEMPORAL
from .models.classifier import load_classifier


class Targets:
    """Frozen features of clean clips, one per transformer token."""

    def __init__(self, classifier: str | None = None, device: torch.device | None = None):
        self.model = load_classifier(classifier).requires_grad_(False).to(device or torch.device("cpu"))
        self.dim = self.model.config.widths[-1]

    def digest(self) -> str:
        from .checkpoint import weights_digest
        return weights_digest(self.model.state_dict())

    @torch.no_grad()
    def __call__(self, video: torch.Tensor, patch: int) -> torch.Tensor:
        """Clips (B, 3, F, H, W) in [-1, 1] -> (B, T_lat, (H / s) * (W / s), dim) float16, s = 8 x patch."""
        h, _ = self.model._trunk(video)
        cells = rearrange(h, "b c t y x -> b t y x c")
        norm = self.model.cell_norm  # what the object queries read; a pooled-readout classifier has none
        cells = norm(cells) if norm is not None else F.layer_norm(cells, (cells.shape[-1],))
        first, rest = cells[:, :1], cells[:, 1:]  # latent frame 0 is frame 0; then 4 frames each
        if rest.shape[1]:
            rest = rearrange(rest, "b (t k) y x c -> b t k y x c", k=TEMPORAL).mean(2)
        cells = torch.cat([first, rest], 1)
        B, T = cells.shape[:2]
        side = SPATIAL * patch
        size = (video.shape[3] // side, video.shape[4] // side)
        if tuple(cells.shape[2:4]) != size:  # e.g. patch 1: 8-pixel tokens on 16-pixel cells
            cells = rearrange(F.interpolate(rearrange(cells, "b t y x c -> (b t) c y x").float(), size=size,
                                            mode="bilinear", align_corners=False), "(b t) c y x -> b t y x c", b=B)
        return rearrange(cells, "b t y x c -> b t (y x) c").half()


def loss(projected: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - cosine similarity of each token's projection and its target, averaged."""
    return 1 - F.cosine_similarity(projected.float(), target.to(projected.device).float(), dim=-1).mean()
