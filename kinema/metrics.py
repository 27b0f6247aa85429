"""The numbers `kinema eval` reports: Fréchet distances and temporal quality.

Fréchet distance between two sets of features, each modelled as a Gaussian (Heusel et al. 2017;
the FVD of Unterthiner et al. 2019 and StyleGAN-V, Skorokhodov et al. 2022, use the same formula):

    FD = |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))

with the matrix square root from scipy and its real part kept (tiny imaginary parts come from
round-off; scipy's sqrtm stays exact when N < D makes both covariances singular, as tested).
It is biased upwards for small sets, so `kinema eval` reports each distance beside its floor,
the same distance between two disjoint sets of real clips of the same size, and the clip-level
ones with a bootstrap standard deviation.

Temporal metrics take uint8 clips (T, H, W, 3), as written to disk:
- flicker: mean absolute difference of consecutive frames, as a score 1 - mad / 255 (VBench's
  temporal flickering: 1 = no change at all);
- smoothness: drop every odd frame, re-create it as the mean of its neighbours, and score the
  error the same way (VBench's motion smoothness uses a learned interpolator; a linear one keeps
  it dependency-free and still punishes jerky motion);
- dynamic degree: optical-flow magnitude (OpenCV Farneback) of the fastest-moving 5% of pixels,
  in pixels per frame at the clip's size, and the fraction of clips above a threshold (VBench);
- subject consistency: mean cosine similarity of each frame's embedding to the first frame's and
  to the previous frame's (VBench, with the classifier's per-frame features instead of DINO).
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

from .errors import InputError


# ------------------------------------------------------------------ Fréchet distance
def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) of features (N, D), in float64."""
    f = np.asarray(features, np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise InputError(f"need at least 2 feature vectors (N, D) for a Fréchet distance, got shape {f.shape}")
    return f.mean(0), np.cov(f, rowvar=False)


def frechet_distance(mu_a, cov_a, mu_b, cov_b) -> float:
    """|mu_a - mu_b|^2 + tr(S_a + S_b - 2 sqrtm(S_a S_b)), the real part of sqrtm."""
    covmean = linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(covmean).all():  # singular product: regularise both, as in pytorch-fid
        eps = 1e-6 * np.eye(len(cov_a))
        covmean = linalg.sqrtm((cov_a + eps) @ (cov_b + eps))
    covmean = np.real(covmean)
    diff = mu_a - mu_b
    return float(max(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(covmean), 0.0))


def features_fd(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between two feature sets (N, D) and (M, D)."""
    return frechet_distance(*gaussian_stats(a), *gaussian_stats(b))


def bootstrap_fd(a: np.ndarray, b: np.ndarray, rounds: int = 20, seed: int = 0) -> float:
    """Standard deviation of the Fréchet distance over `rounds` resamplings (with replacement)
    of both sets: how much the figure would move with other clips of the same size."""
    rng = np.random.default_rng(seed)
    values = [features_fd(a[rng.integers(len(a), size=len(a))], b[rng.integers(len(b), size=len(b))])
              for _ in range(rounds)]
    return float(np.std(values))


# ------------------------------------------------------------------ temporal quality
def _frames(clip: np.ndarray) -> np.ndarray:
    clip = np.asarray(clip)
    if clip.ndim != 4 or clip.shape[-1] != 3 or clip.shape[0] < 1:
        raise InputError(f"a clip must be uint8 (T, H, W, 3) with T >= 1, got shape {clip.shape}")
    return clip.astype(np.float32)


def flicker(clip: np.ndarray) -> float:
    """1 - mean |frame_t+1 - frame_t| / 255: 1 for a frozen clip, lower the more it changes."""
    f = _frames(clip)
    return 1.0 if len(f) < 2 else float(1 - np.abs(np.diff(f, axis=0)).mean() / 255)


def smoothness(clip: np.ndarray) -> float:
    """1 - mean |frame - mean(neighbours)| / 255 over the odd frames: 1 for linear change."""
    f = _frames(clip)
    if len(f) < 3:
        return 1.0
    mid = f[1:-1:2]
    guess = (f[0:-2:2] + f[2::2]) / 2
    return float(1 - np.abs(mid - guess[: len(mid)]).mean() / 255)


def flow_magnitude(clip: np.ndarray, top: float = 0.05) -> float:
    """Optical-flow magnitude (pixels per frame, Farneback) between consecutive frames: the mean
    of each frame pair's largest `top` fraction (as VBench's dynamic degree does), so a small
    moving object counts as motion even on a still background."""
    import cv2  # OpenCV is only needed here

    f = np.asarray(clip)
    _frames(f)
    gray = [cv2.cvtColor(np.ascontiguousarray(x), cv2.COLOR_RGB2GRAY) for x in f.astype(np.uint8)]
    mags = []
    for a, b in zip(gray[:-1], gray[1:]):
        flow = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 9, 3, 5, 1.1, 0)
        mag = np.sort(np.hypot(flow[..., 0], flow[..., 1]).ravel())
        mags.append(mag[-max(1, int(len(mag) * top)):].mean())
    return float(np.mean(mags)) if mags else 0.0


def subject_consistency(frame_features: np.ndarray) -> float:
    """Mean over t >= 1 of (cos(f_t, f_0) + cos(f_t, f_t-1)) / 2 for per-frame features (T, D)."""
    f = np.asarray(frame_features, np.float64)
    if len(f) < 2:
        return 1.0
    f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    return float(((f[1:] @ f[0]) + (f[1:] * f[:-1]).sum(1)).mean() / 2)


def temporal_report(clips: list[np.ndarray], frame_features: list[np.ndarray] | None = None,
                    dynamic_threshold: float = 0.5) -> dict:
    """Means over clips of every temporal metric; `dynamic_degree` is the fraction of clips whose
    mean flow exceeds `dynamic_threshold` pixels per frame."""
    flows = [flow_magnitude(c) for c in clips]
    out = {"flicker": float(np.mean([flicker(c) for c in clips])),
           "smoothness": float(np.mean([smoothness(c) for c in clips])),
           "flow": float(np.mean(flows)),
           "dynamic_degree": float(np.mean([m > dynamic_threshold for m in flows]))}
    if frame_features is not None:
        out["subject_consistency"] = float(np.mean([subject_consistency(f) for f in frame_features]))
    return {k: round(v, 4) for k, v in out.items()}


# ------------------------------------------------------------------ standard FVD (user-supplied I3D)
I3D_SIZE, I3D_FRAMES = 224, 16


def load_i3d(path) -> "torch.jit.ScriptModule":
    """A TorchScript I3D in the StyleGAN-V `i3d_torchscript.pt` layout, from a local file only:
    called as model(x, rescale=False, resize=False, return_features=True) on x (B, 3, 16, 224,
    224) in [-1, 1], it returns (B, 400) features. kinema never downloads it."""
    import torch
    from pathlib import Path

    from .errors import CheckpointError

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no I3D model at {path} (pass the path of a local i3d_torchscript.pt)")
    try:
        return torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as e:  # a corrupt or non-TorchScript file
        raise CheckpointError(f"{path} is not a TorchScript model: {str(e).splitlines()[0]}") from e


def i3d_input(clip: np.ndarray) -> "torch.Tensor":
    """One uint8 clip (T, H, W, 3) as I3D input (3, 16, 224, 224) in [-1, 1]: its first 16
    frames (the last repeated if shorter), shorter side resized to 224 (bilinear), centre crop."""
    import torch
    import torch.nn.functional as F

    f = _frames(clip)[:I3D_FRAMES]
    if len(f) < I3D_FRAMES:
        f = np.concatenate([f, np.repeat(f[-1:], I3D_FRAMES - len(f), 0)])
    x = torch.from_numpy(f).permute(0, 3, 1, 2) / 255  # (T, 3, H, W)
    h, w = x.shape[-2:]
    scale = I3D_SIZE / min(h, w)
    x = F.interpolate(x, size=(max(I3D_SIZE, round(h * scale)), max(I3D_SIZE, round(w * scale))),
                      mode="bilinear", align_corners=False)
    top, left = (x.shape[-2] - I3D_SIZE) // 2, (x.shape[-1] - I3D_SIZE) // 2
    x = x[..., top: top + I3D_SIZE, left: left + I3D_SIZE]
    return (x * 2 - 1).permute(1, 0, 2, 3).contiguous()


def i3d_features(model, clips: list[np.ndarray], batch: int = 8) -> np.ndarray:
    """(N, 400) I3D features of uint8 clips, batched."""
    import torch

    out = []
    with torch.no_grad():
        for i in range(0, len(clips), batch):
            x = torch.stack([i3d_input(c) for c in clips[i: i + batch]])
            out.append(model(x, rescale=False, resize=False, return_features=True).float().numpy())
    return np.concatenate(out)
