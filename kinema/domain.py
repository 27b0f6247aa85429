"""How far an input is from what a model was trained on: honest out-of-domain warnings.

A `Domain` is a Gaussian over feature vectors of the training data (mean and a whitening matrix
from a shrunk covariance), with a threshold calibrated on held-out clips of the same data: the
score of an input is its Mahalanobis distance per dimension, and an input is out of domain when
its score is over the threshold. Calibrated, not a confidence cut: the threshold is a margin
over the highest score of the calibration clips, so held-out training-like clips are never
flagged, and anything that lands far from the whole training cloud is.

Two uses:
- the classifier (`kinema classify`): features of its trunk (models.classifier), stored as
  `domain.safetensors` in the classifier's folder;
- a generating model (generate --image, edit, extend, interpolate): statistics of the latents of
  the given frames (`latent_features`: per channel mean, spread and spatial detail, per latent
  frame, averaged), stored as `domain.safetensors` in the model folder.
`benchmarks/fit_domains.py` fits both on the procedural dataset and measures them on real footage.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .atomic import atomic_path
from .errors import CheckpointError, InputError

FILE = "domain.safetensors"
SHRINK = 0.05  # covariance shrinkage toward its mean variance: a stable inverse from a few hundred clips
MARGIN = 1.25  # threshold = MARGIN x the highest calibration score


@dataclass
class Domain:
    mean: torch.Tensor  # (D,)
    whiten: torch.Tensor  # (D, D): (f - mean) @ whiten has identity covariance on the training data
    threshold: float
    what: str = ""

    def score(self, features: torch.Tensor) -> torch.Tensor:
        """(N, D) -> (N,) Mahalanobis distance per sqrt(dimension): about 1 on the training data."""
        f = features.float().reshape(len(features), -1)
        return ((f - self.mean) @ self.whiten).norm(dim=1) / self.mean.numel() ** 0.5

    def inside(self, features: torch.Tensor) -> torch.Tensor:
        return self.score(features) <= self.threshold

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / FILE
        with atomic_path(path) as tmp:
            save_file({"mean": self.mean.contiguous(), "whiten": self.whiten.contiguous()}, str(tmp),
                      metadata={"threshold": json.dumps(self.threshold), "what": self.what})
        return path

    @classmethod
    def load(cls, folder: str | Path) -> "Domain | None":
        """The folder's domain, or None where it has none."""
        path = Path(folder) / FILE
        if not path.is_file():
            return None
        try:
            from safetensors import safe_open
            with safe_open(str(path), "pt") as fh:
                meta = fh.metadata() or {}
            t = load_file(str(path))
            domain = cls(t["mean"].float(), t["whiten"].float(), float(json.loads(meta["threshold"])), meta.get("what", ""))
        except Exception as e:  # a damaged file: say which
            raise CheckpointError(f"{path}: unreadable domain statistics ({type(e).__name__}: {e})") from e
        if domain.whiten.shape != (domain.mean.numel(), domain.mean.numel()):
            raise CheckpointError(f"{path}: domain statistics of mismatched sizes")
        return domain


def fit(train: torch.Tensor, calibration: torch.Tensor, what: str = "", margin: float = MARGIN) -> Domain:
    """A Domain from features (N, D) of training clips, its threshold from other clips of the same
    data (`calibration`): `margin` times the highest of their scores."""
    train = train.double().reshape(len(train), -1)
    if len(train) < 2 or len(calibration) < 1:
        raise InputError("fitting a domain needs at least 2 training and 1 calibration clips")
    mean = train.mean(0)
    cov = torch.cov(train.T)
    D = cov.shape[0]
    cov = (1 - SHRINK) * cov + SHRINK * cov.diagonal().mean() * torch.eye(D, dtype=cov.dtype)
    # whiten = L^-T, cov = L L^T: then (f - mean) @ whiten has identity covariance
    L = torch.linalg.cholesky(cov)
    whiten = torch.linalg.solve_triangular(L, torch.eye(D, dtype=cov.dtype), upper=False).T
    domain = Domain(mean.float(), whiten.float(), 0.0, what)
    domain.threshold = float(margin * domain.score(calibration).max())
    return domain


def latent_features(z: torch.Tensor) -> torch.Tensor:
    """What a generating model's domain looks at in normalised latents (B, C, T, h, w): per channel
    and latent frame the mean, the spread and the spatial detail (mean absolute difference of
    neighbours), averaged over latent frames: (B, 3C). The same for a still (T = 1) and a clip."""
    z = z.float()
    mean = z.mean((3, 4))
    spread = z.std((3, 4), correction=0)
    detail = (z.diff(dim=3).abs().mean((3, 4)) + z.diff(dim=4).abs().mean((3, 4))) / 2
    return torch.cat([mean, spread, detail], 1).mean(2)
