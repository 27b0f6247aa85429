"""How far an input is from what a model was trained on: honest out-of-domain warnings.

A `Domain` is a calibrated linear score over feature vectors: features are standardised and
weighed by a logistic regression fitted to tell the model's training data (inside) from other
data kinema can make (outside: the `natural` source's filmed photographs and dead leaves; never
the footage it is measured on): "outlier exposure" (Hendrycks et al. 2019). The threshold is
calibrated on held-out clips of the training data: a margin (in logits) over the highest of
their scores, so held-out training-like clips are never flagged. An input whose score is over the
threshold is out of domain. (A Gaussian over the same features, Mahalanobis distance, was tried
first and flagged only 13-50% of real footage windows at no false alarms: the procedural world
is broad enough to enclose much real footage in any ellipsoid; benchmarks/fit_domains.py.)

Two uses:
- the classifier (`kinema classify`): the per-channel mean and spread of each of its layers
  (`VideoClassifier.domain_features`), stored as `domain.safetensors` in the classifier's folder;
- a generating model (generate --image, edit, extend, interpolate): statistics of the latents of
  the given frames (`latent_features`), stored as `domain.safetensors` in the model folder.
`benchmarks/fit_domains.py` fits both and measures them on real footage.
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
WEIGHT_DECAY = 1e-2  # on the logistic weights (standardised features)
MARGIN = 1.0  # threshold = the highest calibration score + MARGIN (logits)


@dataclass
class Domain:
    mean: torch.Tensor  # (D,) standardisation
    scale: torch.Tensor  # (D,)
    weight: torch.Tensor  # (D,) logistic weights: a higher score is further out
    bias: float
    threshold: float
    what: str = ""

    def score(self, features: torch.Tensor) -> torch.Tensor:
        """(N, D) -> (N,): the logit of "not the training data"."""
        f = features.float().reshape(len(features), -1)
        if f.shape[1] != self.mean.numel():
            raise CheckpointError(f"domain statistics of {self.mean.numel()} features, but the model gives "
                                  f"{f.shape[1]}: they were fitted for another model (benchmarks/fit_domains.py)")
        return ((f - self.mean) / self.scale) @ self.weight + self.bias

    def inside(self, features: torch.Tensor) -> torch.Tensor:
        return self.score(features) <= self.threshold

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / FILE
        with atomic_path(path) as tmp:
            save_file({"mean": self.mean.contiguous(), "scale": self.scale.contiguous(),
                       "weight": self.weight.contiguous()}, str(tmp),
                      metadata={"bias": json.dumps(self.bias), "threshold": json.dumps(self.threshold),
                                "what": self.what})
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
            domain = cls(t["mean"].float(), t["scale"].float(), t["weight"].float(), float(json.loads(meta["bias"])),
                         float(json.loads(meta["threshold"])), meta.get("what", ""))
        except Exception as e:  # a damaged file: say which
            raise CheckpointError(f"{path}: unreadable domain statistics ({type(e).__name__}: {e})") from e
        if not domain.mean.shape == domain.scale.shape == domain.weight.shape:
            raise CheckpointError(f"{path}: domain statistics of mismatched sizes")
        return domain


def fit(inside: torch.Tensor, outside: torch.Tensor, calibration: torch.Tensor, what: str = "",
        weight_decay: float = WEIGHT_DECAY, margin: float = MARGIN) -> Domain:
    """A Domain from features (N, D) of training clips (`inside`) and of other data (`outside`),
    its threshold `margin` over the highest score of held-out training clips (`calibration`)."""
    if len(inside) < 2 or len(outside) < 2 or len(calibration) < 1:
        raise InputError("fitting a domain needs at least 2 inside, 2 outside and 1 calibration clips")
    x = torch.cat([inside, outside]).double().reshape(len(inside) + len(outside), -1)
    y = torch.cat([torch.zeros(len(inside)), torch.ones(len(outside))]).double()
    mean, scale = x.mean(0), x.std(0) + 1e-6
    z = (x - mean) / scale
    w = torch.zeros(z.shape[1], dtype=z.dtype, requires_grad=True)
    b = torch.zeros(1, dtype=z.dtype, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=300, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(z @ w + b, y) + weight_decay * w.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    domain = Domain(mean.float(), scale.float(), w.detach().float(), float(b), 0.0, what)
    domain.threshold = float(domain.score(calibration).max()) + margin
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
