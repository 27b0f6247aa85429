"""Out-of-domain warnings (kinema.domain) and real inputs in every mode: calibrated scores that
never flag procedural clips and do flag natural ones, one warning line at the CLI, `in_domain`
in --json, and sources that keep their aspect in edit/extend/interpolate."""

import json
import warnings

import numpy as np
import pytest
import torch

from kinema.cli import main
from kinema.data.natural import NaturalClips
from kinema.data.synthetic import SyntheticClips
from kinema.domain import Domain, fit, latent_features
from kinema.errors import CheckpointError
from kinema.video import Video


def test_a_fitted_domain_separates_and_is_calibrated_on_its_own_clips(tmp_path):
    g = torch.Generator().manual_seed(0)
    inside = torch.randn(400, 6, generator=g)
    outside = torch.randn(400, 6, generator=g) + torch.tensor([3.0, 0, 0, 0, 0, 0])
    calib = torch.randn(200, 6, generator=g)
    d = fit(inside, outside, calib)
    assert bool(d.inside(calib).all())  # the threshold is over every calibration score
    assert d.inside(torch.randn(200, 6, generator=g)).float().mean() > 0.97
    assert (~d.inside(torch.randn(200, 6, generator=g) + torch.tensor([6.0, 0, 0, 0, 0, 0]))).float().mean() > 0.97
    d.save(tmp_path)
    back = Domain.load(tmp_path)
    assert torch.equal(back.score(calib), d.score(calib)) and back.threshold == d.threshold
    assert Domain.load(tmp_path / "nowhere") is None
    (tmp_path / "domain.safetensors").write_bytes(b"\x00" * 50)
    with pytest.raises(CheckpointError, match="domain"):
        Domain.load(tmp_path)


def test_latent_features_are_the_same_for_a_still_alone_and_as_a_batch():
    z = torch.randn(3, 16, 5, 8, 8)
    assert latent_features(z).shape == (3, 48)
    torch.testing.assert_close(latent_features(z[1:2]), latent_features(z)[1:2])


@pytest.fixture(scope="module")
def pipe():
    import kinema
    p = kinema.load()
    if p.domain is None:
        pytest.skip("the shipped model has no domain statistics")
    return p


def _natural(i: int, shape=(17, 64, 64)) -> Video:
    return NaturalClips(77).clip(shape, i).video


def test_the_shipped_model_flags_natural_frames_and_never_procedural_ones(pipe):
    held = SyntheticClips("heldout", 321, 17, 64, 64, 8.0)
    for i in range(8):
        v = held[i].video
        assert pipe.given_domain([v], 64, 64, warn=False)["in_domain"]
        assert pipe.given_domain([Video(v.frames[:1], 8.0)], 64, 64, warn=False)["in_domain"]
    # the latent score is the weaker one (docs/MODEL_CARD.md: 81% of natural clips, 72% of stills)
    out = [not pipe.given_domain([_natural(i)], 64, 64, warn=False)["in_domain"] for i in range(16)]
    stills = [not pipe.given_domain([Video(_natural(i).frames[:1], 8.0)], 64, 64, warn=False)["in_domain"]
              for i in range(16)]
    assert sum(out) >= 9 and sum(stills) >= 9, (out, stills)


def _first_natural_outside(pipe) -> Video:
    for i in range(20):
        v = _natural(i)
        if not pipe.given_domain([v], 64, 64, warn=False)["in_domain"]:
            return v
    pytest.fail("no natural clip of 20 is out of domain")


def test_cli_warns_once_and_says_so_in_json(pipe, tmp_path, capsys):
    real = _first_natural_outside(pipe)
    real.save(tmp_path / "real.mp4")
    Video(real.frames[:1], 8.0).save(tmp_path / "photo.png")
    SyntheticClips("heldout", 5, 17, 64, 64, 8.0)[0].video.save(tmp_path / "shapes.mp4")
    runs = {"generate": ["generate", "a red circle moves left", "--image", str(tmp_path / "photo.png")],
            "edit": ["edit", str(tmp_path / "real.mp4"), "--prompt", "a red circle", "--strength", "0.5"],
            "extend": ["extend", str(tmp_path / "real.mp4"), "--seconds", "1"]}
    for name, argv in runs.items():
        with warnings.catch_warnings():
            warnings.simplefilter("always")  # one process, several commands: show repeated messages too
            assert main([*argv, "--steps", "2", "--out", str(tmp_path / f"{name}.mp4"), "--json"]) == 0
        captured = capsys.readouterr()
        result = json.loads(captured.out)
        assert result["in_domain"] is False and result["domain_score"] > result["domain_threshold"], name
        lines = [line for line in captured.err.splitlines() if line.startswith("warning:")]
        assert len(lines) == 1 and "unlike what this model was trained on" in lines[0], (name, captured.err)
    assert main(["edit", str(tmp_path / "shapes.mp4"), "--prompt", "a red circle", "--steps", "2",
                 "--out", str(tmp_path / "e2.mp4"), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["in_domain"] is True and "warning:" not in captured.err


def test_sources_keep_their_aspect_unless_told(tmp_path, capsys):
    tall = Video(np.ascontiguousarray(SyntheticClips("heldout", 1, 17, 120, 72, 8.0)[0].frames), 8.0)
    tall.save(tmp_path / "tall.mp4")
    wide = Video(np.ascontiguousarray(SyntheticClips("heldout", 1, 1, 90, 160, 8.0)[0].frames), 8.0)
    wide.save(tmp_path / "wide.png")
    cases = [(["edit", str(tmp_path / "tall.mp4"), "--prompt", "x"], (80, 48)),
             (["edit", str(tmp_path / "tall.mp4"), "--prompt", "x", "--height", "64", "--width", "64"], (64, 64)),
             (["extend", str(tmp_path / "tall.mp4"), "--seconds", "0.5", "--fps", "4"], (80, 48)),
             (["interpolate", str(tmp_path / "wide.png"), str(tmp_path / "wide.png")], (48, 80)),
             (["generate", "a red circle", "--image", str(tmp_path / "wide.png")], (48, 80))]
    for argv, (h, w) in cases:
        assert main([*argv, "--steps", "1", "--out", str(tmp_path / "o.mp4"), "--json"]) == 0, argv
        result = json.loads(capsys.readouterr().out)
        assert (result["height"], result["width"]) == (h, w), argv
        if "--fps" in argv:
            assert result["fps"] == 4.0
    v = Video.read(tmp_path / "o.mp4")
    assert (v.height, v.width) == (48, 80)
