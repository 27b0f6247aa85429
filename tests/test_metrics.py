"""Fréchet distance and temporal metrics: hand-checkable cases, and each metric moving the right way."""

import numpy as np
import pytest
import torch

from kinema import metrics
from kinema.data.synthetic import render
from kinema.errors import CheckpointError, InputError


def test_frechet_distance_is_zero_for_identical_sets():
    f = np.random.default_rng(0).normal(size=(200, 6))
    assert metrics.features_fd(f, f) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_matches_a_hand_computation():
    # two Gaussians with diagonal covariances: FD = |mu_a - mu_b|^2 + sum_i (s_a,i - s_b,i)^2
    mu_a, mu_b = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.0])
    var_a, var_b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = ((mu_a - mu_b) ** 2).sum() + ((np.sqrt(var_a) - np.sqrt(var_b)) ** 2).sum()  # 5 + 4 + 1 + 0 = 10
    assert metrics.frechet_distance(mu_a, np.diag(var_a), mu_b, np.diag(var_b)) == pytest.approx(expected)
    assert expected == pytest.approx(10.0)
    # and from samples: large sets converge to it
    rng = np.random.default_rng(1)
    a = mu_a + np.sqrt(var_a) * rng.normal(size=(20000, 3))
    b = mu_b + np.sqrt(var_b) * rng.normal(size=(20000, 3))
    assert metrics.features_fd(a, b) == pytest.approx(expected, rel=0.05)


def test_bootstrap_spread_shrinks_with_more_samples():
    rng = np.random.default_rng(2)
    small = metrics.bootstrap_fd(rng.normal(size=(32, 4)), rng.normal(size=(32, 4)))
    large = metrics.bootstrap_fd(rng.normal(size=(1024, 4)), rng.normal(size=(1024, 4)))
    assert small > 3 * large > 0


def test_too_few_features_is_a_clear_error():
    with pytest.raises(InputError, match="at least 2"):
        metrics.features_fd(np.zeros((1, 4)), np.zeros((5, 4)))


def _clip(motion="right", speed="fast"):
    attrs = {"objects": [{"shape": "square", "color": "red", "size": "medium", "motion": motion, "speed": speed}],
             "num_objects": 1, "camera": "static", "background": "gradient"}
    return render(attrs, np.random.default_rng(0), 17, 64, 64, 8.0)


def test_temporal_metrics_move_the_right_way():
    moving, still = _clip(), _clip("still", None)
    noisy = np.clip(moving + np.random.default_rng(0).normal(0, 25, moving.shape), 0, 255).astype(np.uint8)
    shuffled = moving[np.random.default_rng(1).permutation(len(moving))]
    assert metrics.flicker(still) == 1.0 > metrics.flicker(moving) > metrics.flicker(noisy)
    assert metrics.smoothness(moving) > metrics.smoothness(shuffled)
    assert metrics.flow_magnitude(still) < 0.05 < 1.0 < metrics.flow_magnitude(moving)
    report = metrics.temporal_report([moving, still])
    assert report["dynamic_degree"] == 0.5
    f = np.random.default_rng(3).normal(size=(5, 8))
    assert metrics.subject_consistency(np.repeat(f[:1], 5, 0)) == pytest.approx(1.0)
    assert metrics.subject_consistency(f) < 0.9


def test_i3d_loading_and_preprocessing_with_a_scripted_stand_in(tmp_path):
    class StandIn(torch.nn.Module):  # the StyleGAN-V i3d_torchscript.pt call signature
        def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False,
                    return_features: bool = True) -> torch.Tensor:
            assert x.shape[1:] == (3, 16, 224, 224)
            stats = torch.stack([x.mean((2, 3, 4)), x.amin((2, 3, 4)), x.amax((2, 3, 4))], 1).flatten(1)
            return torch.cat([stats, torch.zeros(x.shape[0], 400 - stats.shape[1])], 1)

    path = tmp_path / "i3d.pt"
    torch.jit.script(StandIn()).save(str(path))
    model = metrics.load_i3d(path)
    clips = [_clip(), _clip("left")[:9]]  # 17 frames, and 9 (padded to 16)
    f = metrics.i3d_features(model, clips)
    assert f.shape == (2, 400)
    assert f[:, 3:6].min() >= -1 and f[:, 6:9].max() <= 1 and f[:, 6:9].max() > 0.5  # [-1, 1] input
    with pytest.raises(CheckpointError, match="no I3D"):
        metrics.load_i3d(tmp_path / "missing.pt")
    (tmp_path / "bad.pt").write_bytes(b"not torchscript")
    with pytest.raises(CheckpointError, match="TorchScript"):
        metrics.load_i3d(tmp_path / "bad.pt")


def test_frechet_distance_with_fewer_clips_than_feature_dimensions():
    # kinema eval's default: N = 256 clips of 512-d classifier features, so both covariances are
    # singular. scipy's sqrtm must still agree with the exact PSD form tr((S_a^1/2 S_b S_a^1/2)^1/2).
    rng = np.random.default_rng(0)
    a = rng.normal(size=(40, 64)) @ rng.normal(size=(64, 64)) * 0.1
    b = rng.normal(size=(40, 64)) @ rng.normal(size=(64, 64)) * 0.1 + 0.05
    (ma, ca), (mb, cb) = metrics.gaussian_stats(a), metrics.gaussian_stats(b)
    ev, u = np.linalg.eigh(ca)
    root_a = (u * np.sqrt(np.clip(ev, 0, None))) @ u.T
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cb @ root_a), 0, None)).sum()
    exact = (ma - mb) @ (ma - mb) + np.trace(ca) + np.trace(cb) - 2 * cross
    assert metrics.features_fd(a, b) == pytest.approx(exact, rel=1e-6)  # measured: agrees to 1e-8
