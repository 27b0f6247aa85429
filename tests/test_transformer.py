import pytest
import torch

from kinema.errors import InputError
from kinema.models.autoencoder import AutoencoderConfig, VideoAutoencoder
from kinema.models.classifier import ClassifierConfig
from kinema.models.transformer import (EXPLICIT_MAX_SCORES, MODELS, TransformerConfig, VideoTransformer, apply_rope,
                                       attention, create, grid_positions, param_count, rope_angles)

C, TEXT_DIM = 8, 384
STEPS = 400  # seeds 0-3 at 400 steps: 26.8-28.6 dB on the clip, 16.8-17.9 on the other (300 steps: seed 0 19.6)


def inputs(T=3, H=4, W=6, B=2, L=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, C, T, H, W, generator=g)
    t = torch.rand(B, T, generator=g)
    text = torch.randn(B, L, TEXT_DIM, generator=g)
    mask = torch.tensor([[True] * L, [True] * 2 + [False] * (L - 2)])[:B]
    return x, t, text, mask


def perturbed(seed=0):
    """A tiny model with every weight jittered, so zero-initialised branches are live."""
    torch.manual_seed(seed)
    model = create("tiny")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


@pytest.mark.parametrize("T,H,W", [(1, 4, 6), (3, 4, 6), (1, 8, 8), (3, 8, 8)])
def test_shape_and_zero_output_at_init(T, H, W):
    torch.manual_seed(0)
    x, t, text, mask = inputs(T, H, W)
    out = create("tiny")(x, t, text, mask)
    assert out.shape == x.shape
    assert torch.equal(out, torch.zeros_like(x))
    assert perturbed()(x, t, text, mask).abs().mean() > 1e-3  # only the zero init made it zero


@torch.no_grad()
def test_per_frame_timesteps_matter():
    model = perturbed()
    x, t, text, mask = inputs(T=3)
    base = model(x, t, text, mask)
    t1 = t.clone()
    t1[0, 1] += 0.3
    moved = model(x, t1, text, mask)
    diff = (moved - base).abs().amax(dim=(1, 3, 4))  # (B, T)
    assert diff[0, 1] > 1e-3
    assert diff[1].max() < 1e-6  # other sample untouched
    swapped = t[:, [2, 1, 0]]
    assert not torch.allclose(model(x, swapped, text, mask), base, atol=1e-4)  # not just the mean t


@torch.no_grad()
def test_frame_conditioning_reaches_its_own_frame():
    # Without self-attention frames are independent, so frame k of a clip must equal frame k alone:
    # this fails if per-frame conditioning were broadcast to the wrong tokens.
    model = perturbed()
    for block in model.blocks:
        block.attn.out.weight.zero_()
        block.attn.out.bias.zero_()
    x, t, text, mask = inputs(T=3)
    out = model(x, t, text, mask)
    for k in range(3):
        alone = model(x[:, :, k:k + 1], t[:, k:k + 1], text, mask)
        torch.testing.assert_close(out[:, :, k:k + 1], alone, atol=1e-5, rtol=1e-5)
    assert (out[:, :, 0] - out[:, :, 1]).abs().max() > 1e-3


@torch.no_grad()
def test_text_mask():
    model = perturbed()
    x, t, text, mask = inputs(L=5)
    base = model(x, t, text, mask)
    padded = text.clone()
    padded[~mask] = torch.randn(int((~mask).sum()), TEXT_DIM) * 10
    assert (model(x, t, padded, mask) - base).abs().max() < 1e-6
    real = text.clone()
    real[1, 0] += 1.0
    assert (model(x, t, real, mask) - base)[1].abs().max() > 1e-3
    none = torch.zeros_like(mask)
    out = model(x, t, text, none)
    assert torch.isfinite(out).all()
    assert torch.equal(out, model(x, t, torch.randn_like(text), none))  # no real token: text is ignored
    assert torch.equal(model(x, t, text), model(x, t, text, torch.ones_like(mask)))


@pytest.mark.parametrize("n,L", [(12, 12), (12, 5), (400, 400)])  # explicit (short) and fused (long) paths
def test_attention_matches_sdpa_with_and_without_mask(n, L):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, m, 8, generator=g, requires_grad=True) for m in (n, L, L))
    mask = torch.rand(2, 1, 1, L, generator=g) > 0.3
    mask[..., 0] = True  # every query sees at least one key
    for m in (None, mask):
        ours = attention(q, k, v, m)
        ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=m)
        assert torch.allclose(ours, ref, atol=1e-5)
        g1 = torch.autograd.grad(ours.square().sum(), (q, k, v))
        g2 = torch.autograd.grad(ref.square().sum(), (q, k, v))
        assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(g1, g2))
    assert (n * L <= EXPLICIT_MAX_SCORES) == (n < 100)  # both paths are exercised


def test_rope_is_relative():
    torch.manual_seed(0)
    head_dim, n = 16, 7
    pos = torch.randint(0, 10, (n, 3)).float()
    q, k = torch.randn(n, head_dim), torch.randn(n, head_dim)

    def scores(pq, pk):
        return apply_rope(q, *rope_angles(pq, head_dim)) @ apply_rope(k, *rope_angles(pk, head_dim)).T

    base = scores(pos, pos)
    shift = torch.tensor([3.0, -2.0, 5.0])
    torch.testing.assert_close(scores(pos + shift, pos + shift), base, atol=1e-4, rtol=1e-4)
    for axis in range(3):  # every axis is encoded: moving keys along it alone changes the scores
        moved = pos.clone()
        moved[:, axis] += 1
        assert (scores(pos, moved) - base).abs().max() > 1e-2
    assert torch.allclose(apply_rope(q, *rope_angles(pos, head_dim)).norm(dim=-1), q.norm(dim=-1), atol=1e-5)
    assert grid_positions(2, 3, 4)[-1].tolist() == [1.0, 2.0, 3.0]


@torch.no_grad()
def test_runs_at_unseen_sizes():
    model = perturbed()
    for T, H, W in [(5, 16, 16), (2, 4, 24)]:
        x, t, text, mask = inputs(T, H, W)
        out = model(x, t, text, mask)
        assert out.shape == x.shape and torch.isfinite(out).all()


def test_tiny_model_overfits():
    torch.manual_seed(0)
    model = create("tiny")
    x, t, text, mask = inputs(T=2, H=4, W=4)
    target = torch.randn_like(x)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(200):
        loss = torch.nn.functional.mse_loss(model(x, t, text, mask), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 10


def test_gradient_checkpointing_gives_the_same_gradients():
    x, t, text, mask = inputs(T=2, H=4, W=4)
    grads = []
    for ckpt in (False, True):
        model = perturbed().train()
        model.gradient_checkpointing = ckpt
        model(x, t, text, mask).square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    torch.testing.assert_close(grads[0], grads[1])


def test_zoo():
    counts = {name: param_count(name) for name in MODELS}
    assert counts["tiny"] < counts["S"] < counts["B"] < counts["L"]
    assert counts["tiny"] < 100_000
    assert 10e6 < counts["S"] < 30e6
    assert 80e6 < counts["B"] < 150e6
    assert 300e6 < counts["L"] < 500e6
    assert create("tiny").num_params() == counts["tiny"]
    assert param_count("S", depth=4) < counts["S"]


def test_config_round_trip_and_create():
    cfg = MODELS["S"]
    assert TransformerConfig.from_dict(cfg.to_dict()) == cfg
    model = create(cfg.to_dict() | {"dim": 32, "heads": 2, "depth": 1}, text_dim=16)
    assert (model.config.dim, model.config.depth, model.config.text_dim) == (32, 1, 16)
    with pytest.raises(InputError, match="unknown transformer"):
        create("XXL")
    with pytest.raises(InputError, match="wdith"):
        create("tiny", wdith=3)
    with pytest.raises(InputError, match="head dim"):
        TransformerConfig(dim=30, heads=4)


def test_bad_inputs():
    model = create("tiny")
    x, t, text, mask = inputs(T=2, H=7, W=6)
    with pytest.raises(InputError, match=r"height 7 .*6 or 8"):
        model(x, t, text, mask)
    x, t, text, mask = inputs(T=2, H=4, W=1)
    with pytest.raises(InputError, match=r"width 1 .*: 2$"):
        model(x, t, text, mask)
    x, t, text, mask = inputs(T=2)
    with pytest.raises(InputError, match="one timestep per latent frame"):
        model(x, t[:, :1], text, mask)
    with pytest.raises(InputError, match="one timestep per latent frame"):
        model(x, t[:, 0], text, mask)
    with pytest.raises(InputError, match="text must be"):
        model(x, t, text[..., :10], mask)
    with pytest.raises(InputError, match="text_mask"):
        model(x, t, text, mask[:, :3])
    with pytest.raises(InputError, match="latents must be"):
        model(x[:, :4], t, text, mask)


@torch.no_grad()
def test_bf16_autocast_matches_float32():
    model = perturbed()
    x, t, text, mask = inputs()
    ref = model(x, t, text, mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x, t, text, mask)
    assert out.dtype == torch.bfloat16
    assert (out.float() - ref).abs().max() < 0.05 * ref.abs().max()


def test_tiny_model_trained_by_flow_matching_on_one_clip_samples_that_clip():
    """The whole recipe in miniature: flow-matching loss on one clip (its frames as 3-channel
    'latents'), then Euler sampling from fresh noise lands on that clip and not on another."""
    from kinema.data.synthetic import SyntheticClips
    from kinema.diffusion.flow import add_noise, flow_loss, sample_training_t
    from kinema.diffusion.sampling import euler, timesteps
    from kinema.tasks import psnr_db

    torch.manual_seed(0)
    clips = SyntheticClips(frames=3, height=8, width=8)
    static = [i for i in range(20) if clips[i].attributes["camera"] == "static"]  # a textured pan is noise at 8x8
    x0, other = (clips[i].video.to_tensor()[None] for i in static[:2])  # (1, 3, 3, 8, 8)
    model = create("tiny", latent_channels=3, patch=1)
    text, mask = torch.zeros(8, 1, TEXT_DIM), torch.ones(8, 1, dtype=torch.bool)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(STEPS):
        xb = x0.expand(8, -1, -1, -1, -1)
        t = sample_training_t(8, 3, 192, gen)
        noise = torch.randn(xb.shape, generator=gen)
        loss = flow_loss(model(add_noise(xb, noise, t), t, text, mask), xb, noise)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-20:]) < 0.25 * sum(losses[:20])  # the velocity loss falls 4x
    model.eval()
    sample = euler(lambda x, t: model(x, t.expand(1, 3), text[:1], mask[:1]), torch.randn(x0.shape, generator=gen),
                   timesteps(16))
    assert psnr_db(sample, x0) > 19.0  # the sample is the clip (measured 27.0 dB; the other clip: 17.9)
    assert psnr_db(sample, x0) > psnr_db(sample, other) + 5.0


def test_text_context_computed_once_gives_the_same_velocity():
    from kinema.models.transformer import TransformerConfig, VideoTransformer
    torch.manual_seed(0)
    m = VideoTransformer(TransformerConfig(latent_channels=4, dim=24, depth=2, heads=2, freq_dim=16, text_dim=8))
    for p in m.parameters():  # past adaLN-Zero's zeros, so the text matters
        torch.nn.init.normal_(p, std=0.2)
    x, t = torch.randn(2, 4, 2, 4, 4), torch.rand(2, 2)
    text, mask = torch.randn(2, 3, 8), torch.tensor([[True, True, False], [False, False, False]])
    ctx = m.text_context(text, mask)
    v = m(x, t, text, mask)
    assert torch.allclose(v, m(x, t, ctx), atol=1e-6)
    assert not torch.allclose(v, m(x, t, m.text_context(text.flip(0), mask)), atol=1e-3)


@torch.no_grad()
def test_compiled_for_inference_gives_the_eager_velocity_with_frozen_weights():
    """Pipeline.compile's module: inductor with frozen weights, same velocity as eager (within bf16),
    and the model's other attributes (config, text_context) reached through it."""
    from kinema.runtime import compile_for_inference
    model = perturbed()
    x, t, text, mask = inputs()
    compiled = compile_for_inference(model)
    assert compiled.config is model.config
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ctx = compiled.text_context(text, mask)
        ref, out, other = model(x, t, ctx), compiled(x, t, ctx), compiled(x, t.flip(0), ctx)
    assert (out.float() - ref.float()).abs().max() < 0.05 * ref.float().abs().max()
    assert (other.float() - out.float()).abs().max() > 0.2 * ref.float().abs().max()  # a function of t


@pytest.mark.parametrize("config, bad", [
    (TransformerConfig, dict(patch=3)), (TransformerConfig, dict(patch="2")), (TransformerConfig, dict(dim=2.0)),
    (TransformerConfig, dict(dim=65536)), (TransformerConfig, dict(depth=0)), (TransformerConfig, dict(depth=True)),
    (TransformerConfig, dict(heads=[6])), (TransformerConfig, dict(mlp_ratio=float("nan"))),
    (TransformerConfig, dict(mlp_ratio=0)), (TransformerConfig, dict(qk_norm="yes")),
    (TransformerConfig, dict(pool_text=1)), (TransformerConfig, dict(freq_dim=255)),
    (TransformerConfig, dict(rope_theta=float("inf"))), (TransformerConfig, dict(latent_channels=-8)),
    (AutoencoderConfig, dict(patch=3)), (AutoencoderConfig, dict(channel_mult="1244")),
    (AutoencoderConfig, dict(channel_mult=[1, 2, 4])), (AutoencoderConfig, dict(temporal_kernel=[1, 3, 3, 0])),
    (AutoencoderConfig, dict(base_channels=12)), (AutoencoderConfig, dict(kl_weight=-1)),
    (AutoencoderConfig, dict(l1_weight=float("nan"))), (AutoencoderConfig, dict(shortcuts="no")),
    (AutoencoderConfig, dict(logvar_init=-100)),
    (ClassifierConfig, dict(frames=1)), (ClassifierConfig, dict(size=60)), (ClassifierConfig, dict(fps=0)),
    (ClassifierConfig, dict(widths=[])), (ClassifierConfig, dict(widths=[32, "64"])),
    (ClassifierConfig, dict(groups=0)), (ClassifierConfig, dict(readout="mean")),
    (ClassifierConfig, dict(differences="true")), (ClassifierConfig, dict(queries=2, readout="objects")),
])
def test_every_config_field_is_range_checked(config, bad):
    """A config.json or --set model.KEY=VALUE value of the wrong type or out of range is refused
    with the valid range, never coerced ("yes" is not True, 2.0 is not 2)."""
    with pytest.raises(InputError, match=f"{next(iter(bad))}|widths|head dim"):
        config(**bad)
    with pytest.raises(InputError):
        config.from_dict({**config().to_dict(), **bad})


def test_a_model_size_is_counted_without_allocating():
    """checkpoint.count_params counts on the meta device, what a loader runs before building: a
    config.json of dim 16384, depth 64 is sized in a moment, not after 4 GB; a config error comes
    through as itself."""
    import time

    from kinema.checkpoint import MAX_PARAMS, count_params

    def build(c):
        return VideoTransformer(TransformerConfig.from_dict(c))

    assert count_params(build, MODELS["S"].to_dict()) == param_count("S")
    assert count_params(lambda c: VideoAutoencoder(AutoencoderConfig.from_dict(c)), {}) == \
        sum(p.numel() for p in VideoAutoencoder(AutoencoderConfig()).parameters())
    t0 = time.perf_counter()
    assert count_params(build, {"dim": 16384, "depth": 64, "heads": 128}) > MAX_PARAMS > param_count("L")
    assert time.perf_counter() - t0 < 2.0
    with pytest.raises(InputError, match="dim"):
        count_params(build, {"dim": 65536, "depth": 64})
