import math

import pytest
import torch
import torch.nn as nn

from kinema.diffusion.flow import (
    EMA, add_noise, drop_captions, flow_loss, logit_normal, motion_weight, sample_training_t, shift_for_tokens,
    shift_timesteps, velocity)
from kinema.diffusion.sampling import cfg, euler, heun, timesteps
from kinema.errors import KinemaError


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_logit_normal_in_unit_interval_with_median_half():
    t = logit_normal((20000,), generator=gen())
    assert t.min() > 0 and t.max() < 1
    assert abs(t.median().item() - 0.5) < 0.02
    assert abs(logit_normal((20000,), mean=1.0, generator=gen()).median().item() - 1 / (1 + math.exp(-1))) < 0.02


def test_shift_is_monotone_keeps_ends_and_pushes_up():
    t = torch.linspace(0, 1, 101)
    for s in (0.5, 1.0, 3.0):
        u = shift_timesteps(t, s)
        assert (u[1:] > u[:-1]).all()
        assert u[0] == 0 and u[-1] == 1
    assert torch.equal(shift_timesteps(t, 1.0), t)
    assert (shift_timesteps(t, 3.0)[1:-1] > t[1:-1]).all()


def test_shift_for_tokens_grows_with_tokens():
    shifts = [shift_for_tokens(n) for n in (64, 256, 512, 1024, 4096, 10**5)]
    assert shifts[0] == shifts[1] == 1.0 and shifts[-1] == shifts[-2] == 3.0
    assert shifts[1] < shifts[2] < shifts[3] < shifts[4]
    assert shift_for_tokens(1024) == pytest.approx(math.sqrt(3))  # halfway in log tokens


def test_sample_training_t_shapes_and_per_frame():
    t = sample_training_t(6, 5, 1024, gen())
    assert t.shape == (6, 5) and (t == t[:, :1]).all() and (t > 0).all() and (t < 1).all()
    t[:, 0] = 0  # writable: callers zero condition frames
    tf = sample_training_t(6, 5, 1024, gen(), per_frame=True)
    assert not (tf == tf[:, :1]).all()
    assert torch.equal(sample_training_t(6, 5, 1024, gen(3)), sample_training_t(6, 5, 1024, gen(3)))
    # more tokens -> noisier on average
    lo = sample_training_t(4000, 1, 256, gen()).mean()
    hi = sample_training_t(4000, 1, 4096, gen()).mean()
    assert hi > lo + 0.1


def test_add_noise_and_velocity_are_consistent():
    x0, eps = torch.randn(2, 3, 4, 5, 6, generator=gen(1)), torch.randn(2, 3, 4, 5, 6, generator=gen(2))
    t = torch.rand(2, 4, generator=gen(3))
    xt = add_noise(x0, eps, t)
    tb = t[:, None, :, None, None]
    torch.testing.assert_close(xt, x0 + tb * velocity(x0, eps))
    t[:, 0] = 0  # a condition frame stays clean, a t = 1 frame is pure noise
    t[:, 1] = 1
    xt = add_noise(x0, eps, t)
    assert torch.equal(xt[:, :, 0], x0[:, :, 0]) and torch.equal(xt[:, :, 1], eps[:, :, 1])


def test_flow_loss_zero_for_exact_velocity_and_ignores_masked_frames():
    x0, eps = torch.randn(2, 3, 4, 5, 6, generator=gen(1)), torch.randn(2, 3, 4, 5, 6, generator=gen(2))
    v = velocity(x0, eps)
    assert flow_loss(v, x0, eps).item() == 0.0
    pred = v + 0.1 * torch.randn(v.shape, generator=gen(4))
    mask = torch.ones(2, 4, dtype=torch.bool)
    mask[:, 0] = False
    base = flow_loss(pred, x0, eps, mask)
    assert base > 0
    spoiled = pred.clone()
    spoiled[:, :, 0] = 1e6  # a condition frame: excluded from the loss
    assert flow_loss(spoiled, x0, eps, mask).item() == pytest.approx(base.item(), rel=1e-6)
    assert flow_loss(spoiled, x0, eps) > 1e6
    # (B, T, H, W) masks work too and give the same value
    assert flow_loss(spoiled, x0, eps, mask[:, :, None, None].expand(2, 4, 5, 6)).item() == pytest.approx(base.item())
    # nothing selected: zero, but still differentiable
    p = pred.clone().requires_grad_()
    z = flow_loss(p, x0, eps, torch.zeros(2, 4, dtype=torch.bool))
    z.backward()
    assert z.item() == 0 and p.grad is not None and p.grad.abs().sum() == 0


def test_motion_weight_favours_what_moves():
    x0 = torch.zeros(1, 2, 5, 8, 8)
    x0[:, :, :, 0, 0] = 3.0  # a constant "background" feature: does not count as motion
    assert torch.allclose(motion_weight(x0 + 0.0, 3.0), torch.ones(1, 5, 8, 8))  # nothing moves: plain mean
    for t in range(5):  # a blob stepping right one position per frame
        x0[:, :, t, 4, 2 + t] = 1.0
    w = motion_weight(x0, 3.0)
    on_path, off_path = w[0, :, 4, 2:7], w[0, :, 0:3, :]
    assert on_path.min() > 1.5 and torch.allclose(off_path, torch.ones_like(off_path))
    assert w.mean().item() == pytest.approx(4.0)  # 1 + strength on average, by construction
    # as a loss weight: an error on the path costs more than the same error off it
    eps, v = torch.zeros_like(x0), velocity(x0, torch.zeros_like(x0))
    a, b = v.clone(), v.clone()
    a[:, :, 2, 4, 4] += 1
    b[:, :, 2, 0, 7] += 1
    assert flow_loss(a, x0, eps, weight=w) > 2 * flow_loss(b, x0, eps, weight=w)
    assert flow_loss(a, x0, eps) == flow_loss(b, x0, eps)


def test_timesteps_go_from_one_to_zero_and_shift():
    ts = timesteps(8)
    assert ts.shape == (9,) and ts[0] == 1 and ts[-1] == 0 and (ts[1:] < ts[:-1]).all()
    assert (timesteps(8, shift=3.0)[1:-1] > ts[1:-1]).all()
    with pytest.raises(KinemaError):
        timesteps(0)


def test_euler_with_oracle_velocity_recovers_the_target():
    x0 = torch.randn(2, 4, 3, 8, 8, generator=gen(1))
    noise = torch.randn(2, 4, 3, 8, 8, generator=gen(2))
    seen = []
    out = euler(lambda x, t: (x - x0) / t, noise, timesteps(4, shift=2.0), callback=lambda i, t, x: seen.append(i))
    assert seen == [0, 1, 2, 3]
    torch.testing.assert_close(out, x0, atol=1e-5, rtol=0)
    assert not torch.allclose(noise, x0, atol=0.1)


def mixture_velocity(x, t, mus=(-2.0, 1.5), s=0.3):
    """Exact velocity for data = an equal mixture of N(mu_k, s^2): v = (x - E[x0 | x_t]) / t."""
    t = float(t)
    mu = torch.tensor(mus, dtype=x.dtype)
    var = (1 - t) ** 2 * s**2 + t**2  # x_t | k ~ N((1 - t) mu_k, var)
    logw = -((x[..., None] - (1 - t) * mu) ** 2) / (2 * var)
    w = torch.softmax(logw, -1)
    post = mu + (1 - t) * s**2 / var * (x[..., None] - (1 - t) * mu)  # E[x0 | x_t, k]
    return (x - (w * post).sum(-1)) / t


def test_heun_beats_euler_on_a_curved_field():
    x1 = torch.randn(256, generator=gen(5), dtype=torch.float64)
    ref = heun(mixture_velocity, x1, timesteps(2000).double())
    for steps in (6, 12):
        ts = timesteps(steps).double()
        err_euler = (euler(mixture_velocity, x1, ts) - ref).abs().mean()
        err_heun = (heun(mixture_velocity, x1, ts) - ref).abs().mean()
        assert err_heun < 0.5 * err_euler
    # the samplers are deterministic
    assert torch.equal(heun(mixture_velocity, x1, ts), heun(mixture_velocity, x1, ts))


def test_cfg_batches_cond_and_uncond_into_one_call():
    calls = []

    def model_fn(x, t, c):
        states, mask = c
        calls.append(x.shape[0])
        pooled = (states * mask[..., None]).sum((1, 2))  # (B,)
        return x * pooled.view(-1, 1, 1, 1, 1) + t

    x = torch.randn(2, 3, 2, 4, 4, generator=gen(1))
    cond = (torch.randn(2, 5, 8, generator=gen(2)), torch.ones(2, 5, dtype=torch.bool))
    uncond = (torch.randn(2, 2, 8, generator=gen(3)), torch.ones(2, 2, dtype=torch.bool))  # shorter text
    t = torch.tensor(0.7)
    v_c, v_u = model_fn(x, t, cond), model_fn(x, t, uncond)
    calls.clear()
    out = cfg(model_fn, cond, uncond, 4.0)(x, t)
    assert calls == [4]  # one call on 2B samples
    torch.testing.assert_close(out, v_u + 4.0 * (v_c - v_u))
    calls.clear()
    torch.testing.assert_close(cfg(model_fn, cond, uncond, 1.0)(x, t), v_c)
    assert calls == [2]  # guidance 1: no unconditional pass
    # a guidance interval: guided inside it (ends included), the conditional pass alone outside
    limited = cfg(model_fn, cond, uncond, 4.0, interval=(0.2, 0.7))
    calls.clear()
    torch.testing.assert_close(limited(x, t), v_u + 4.0 * (v_c - v_u))
    assert calls == [4]
    for outside in (0.9, 0.1):
        calls.clear()
        torch.testing.assert_close(limited(x, torch.tensor(outside)), model_fn(x, torch.tensor(outside), cond))
        assert calls == [2, 2]  # the sampler's call on B samples (and the reference's)


def test_ema_tracks_a_changing_parameter():
    model = nn.Linear(3, 2)
    ema = EMA(model, decay=0.9, warmup=False)
    start = ema.shadow["weight"].clone()
    with torch.no_grad():
        model.weight.fill_(1.0)
    dists = []
    for _ in range(60):
        ema.update(model)
        dists.append((ema.shadow["weight"] - 1.0).abs().max().item())
    assert all(b < a for a, b in zip(dists, dists[1:])) and dists[-1] < 0.01
    assert ema.current_decay() == 0.9
    # warmup: the first update moves 90% of the way ((1 + 0) / (10 + 0) = 0.1 kept)
    ema2 = EMA(nn.Linear(3, 2), decay=0.999)
    w0 = ema2.shadow["weight"].clone()
    ema2.update(model)
    torch.testing.assert_close(ema2.shadow["weight"], 0.1 * w0 + 0.9)
    # copy_to / applied_to / state dict round trip
    other = nn.Linear(3, 2)
    ema.copy_to(other)
    torch.testing.assert_close(other.weight, ema.shadow["weight"])
    fresh = nn.Linear(3, 2)
    before = fresh.weight.detach().clone()
    with ema.applied_to(fresh):
        torch.testing.assert_close(fresh.weight, ema.shadow["weight"])
    assert torch.equal(fresh.weight, before)
    restored = EMA(nn.Linear(3, 2))
    restored.load_state_dict(ema.state_dict())
    assert restored.num_updates == 60 and torch.equal(restored.shadow["weight"], ema.shadow["weight"])
    assert not torch.equal(start, ema.shadow["weight"])


def test_drop_captions_about_ten_percent_and_deterministic():
    caps = [f"caption {i}" for i in range(4000)]
    out = drop_captions(caps, 0.1, gen(7))
    dropped = sum(o == "" for o in out)
    assert 320 < dropped < 480
    assert all(o in ("", c) for o, c in zip(out, caps))
    assert out == drop_captions(caps, 0.1, gen(7))
    assert out != drop_captions(caps, 0.1, gen(8))
    assert drop_captions(caps[:10], 0.0, gen()) == caps[:10]
