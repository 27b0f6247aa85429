"""The causal video autoencoder: shapes, causality, chunked = whole, it learns, bad input."""

import pytest
import torch

from kinema.data.synthetic import SyntheticClips
from kinema.errors import InputError
from kinema.models.autoencoder import AutoencoderConfig, VideoAutoencoder


def tiny(**kw):
    torch.manual_seed(0)
    return VideoAutoencoder(AutoencoderConfig(latent_channels=8, base_channels=4, **kw)).eval()


@pytest.mark.parametrize("patch", [1, 2])
@pytest.mark.parametrize("frames", [1, 5, 17])
def test_shapes_image_and_video_share_the_latent_space(frames, patch):
    ae = tiny(patch=patch)
    x = torch.rand(2, 3, frames, 16, 24) * 2 - 1
    z = ae.encode(x)
    assert z.shape == (2, 8, 1 + (frames - 1) // 4, 2, 3)
    assert ae.decode(z).shape == x.shape


@torch.no_grad()
def test_encoder_is_causal_in_time():
    ae = tiny()
    x = torch.rand(1, 3, 17, 16, 16) * 2 - 1
    y = x.clone()
    y[:, :, 9:] = torch.rand_like(y[:, :, 9:])  # change frames 9..16
    zx, zy = ae.encode(x), ae.encode(y)
    assert torch.equal(zx[:, :, :3], zy[:, :, :3])  # latents of frames 0, 1-4, 5-8 untouched
    assert not torch.allclose(zx[:, :, 3:], zy[:, :, 3:])
    dx, dy = ae.decode(zx), ae.decode(zy)
    assert torch.equal(dx[:, :, :9], dy[:, :, :9])  # and decoding is causal too


@torch.no_grad()
@pytest.mark.parametrize("patch", [1, 2])
def test_chunked_encode_and_decode_equal_whole_video(patch):
    ae = tiny(patch=patch)
    x = torch.rand(1, 3, 33, 16, 16) * 2 - 1
    z = ae.encode(x)
    for chunk in (4, 8, 12):
        assert (ae.encode(x, chunk_frames=chunk) - z).abs().max() < 1e-5
    whole = ae.decode(z)
    for chunk in (1, 2, 3):
        assert (ae.decode(z, chunk_latent_frames=chunk) - whole).abs().max() < 1e-5
    with pytest.raises(InputError, match="multiple of 4"):
        ae.encode(x, chunk_frames=6)


def test_tiny_autoencoder_overfits_one_clip():
    torch.manual_seed(0)
    ae = VideoAutoencoder(AutoencoderConfig(latent_channels=8, base_channels=8))
    x = SyntheticClips(frames=5, height=32, width=32)[3].video.to_tensor()[None]
    opt = torch.optim.Adam(ae.parameters(), 2e-3)
    first = None
    for _ in range(150):
        loss, parts = ae(x)
        first = first or parts["mse"].item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert parts["mse"].item() < first / 10


@torch.no_grad()
def test_latent_statistics_normalise_and_survive_a_state_dict_round_trip():
    ae = tiny()
    x = torch.rand(4, 3, 9, 16, 16) * 2 - 1
    raw = ae.encode(x, normalize=False)
    ae.set_latent_stats(raw)
    z = ae.encode(x)
    assert z.mean((0, 2, 3, 4)).abs().max() < 1e-4
    assert (z.std((0, 2, 3, 4)) - 1).abs().max() < 1e-3
    other = tiny()
    other.load_state_dict(ae.state_dict())
    assert torch.allclose(other.encode(x), z)
    assert torch.allclose(ae.decode(z), ae._decode(raw), atol=1e-5)  # decode undoes the normalisation


def test_bad_input_names_nearest_valid_values():
    ae = tiny()
    with pytest.raises(InputError, match="13 or 17"):
        ae.encode(torch.zeros(1, 3, 16, 16, 16))
    with pytest.raises(InputError, match="56 or 64"):
        ae.encode(torch.zeros(1, 3, 5, 60, 64))
    with pytest.raises(InputError, match="patch"):
        AutoencoderConfig(patch=3)
    cfg = AutoencoderConfig(latent_channels=12, patch=2)
    assert AutoencoderConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(InputError, match="unknown"):
        AutoencoderConfig.from_dict({"latent_channel": 8})
