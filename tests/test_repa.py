"""REPA (kinema.repa): the frozen classifier's features as per-token targets, the alignment loss
in training, exact resume, and the projector dropped on export."""

import json

import pytest
import torch
from safetensors.torch import load_file

from kinema.checkpoint import export_model, read_weights
from kinema.config import preset
from kinema.data.synthetic import SyntheticClips
from kinema.errors import InputError
from kinema.pipeline import load
from kinema.repa import Targets
from kinema.train import train


@pytest.fixture(scope="module")
def ae_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "ae"
    train("autoencoder", preset("autoencoder", "tiny"), out, max_steps=10, progress=False)
    return out


def test_targets_are_one_per_token_and_follow_the_content_where_it_moves():
    """Each latent frame's 4x4 token grid (patch 2) gets the classifier's cell features of the
    frames it holds; moving the picture one token to the right moves the targets one token."""
    targets = Targets()
    x = torch.stack([SyntheticClips("heldout", 0)[i].video.to_tensor() for i in range(4)])
    got = targets(x, patch=2)
    assert got.shape == (4, 5, 16, targets.dim) and got.dtype == torch.float16
    assert torch.equal(got, targets(x, patch=2))  # a pure function of the clip
    moved = targets(torch.roll(x, 16, dims=4), patch=2)
    grid = lambda t: t.float().reshape(4, 5, 4, 4, -1)  # noqa: E731
    cos = lambda a, b: torch.nn.functional.cosine_similarity(a, b, dim=-1).mean()  # noqa: E731
    shifted, same = cos(grid(moved)[:, :, :, 2], grid(got)[:, :, :, 1]), cos(grid(moved)[:, :, :, 2], grid(got)[:, :, :, 2])
    assert shifted > same + 0.05, (float(shifted), float(same))
    assert targets(x, patch=1).shape == (4, 5, 64, targets.dim)  # 8-pixel tokens: the map resized to 8x8


def test_repa_trains_the_projector_resumes_exactly_and_is_dropped_on_export(tmp_path, ae_run):
    cfg = preset("transformer", "tiny").override(["repa=1", "repa_depth=1", "latent_cache=16", "lr=3e-3",
                                                  "checkpoint_every=1000", "log_every=1"])
    train("transformer", cfg, tmp_path / "straight", max_steps=30, autoencoder=ae_run, progress=False)
    rows = [json.loads(line) for line in (tmp_path / "straight" / "log.jsonl").read_text().splitlines()]
    align = [r["repa"] for r in rows]
    assert sum(align[-5:]) < 0.8 * sum(align[:5]), align  # the tokens learn to predict the classifier's cells
    assert all(abs(r["loss"] - (r["flow"] + r["repa"])) < 1e-3 for r in rows[-3:])
    # stopped and resumed: the same weights, projector and optimiser state included
    train("transformer", cfg, tmp_path / "split", max_steps=12, autoencoder=ae_run, progress=False)
    train("transformer", None, tmp_path / "split", max_steps=30, resume=True, autoencoder=ae_run, progress=False)
    a, b = (load_file(str(tmp_path / r / "model" / "train_state" / "state.safetensors")) for r in ("straight", "split"))
    assert a.keys() == b.keys() and any(k.startswith("model.align.") for k in a)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)
    # exported: no projector, and it generates what the run's model does
    out = export_model(tmp_path / "straight" / "model", tmp_path / "export", dtype=torch.float32)
    assert not any(k.startswith("align.") for k in read_weights(out / "transformer" / "model.safetensors"))
    assert json.loads((out / "transformer" / "config.json").read_text())["align_dim"] == 0
    run, shipped = load(tmp_path / "straight"), load(out)
    kw = dict(frames=5, height=16, width=16, steps=2, seed=3, progress=False, watermark=False)
    torch.testing.assert_close(run.generate("a red circle", **kw).to_tensor(),
                               shipped.generate("a red circle", **kw).to_tensor())


def test_repa_is_refused_where_it_cannot_apply(tmp_path):
    with pytest.raises(InputError, match="repa"):
        preset("autoencoder", "tiny").override(["repa=1"])
    with pytest.raises(InputError, match="repa_depth"):
        preset("transformer", "tiny").override(["repa=1", "repa_depth=3"])  # tiny has 2 blocks
    with pytest.raises(InputError, match="LoRA"):
        preset("transformer", "tiny").override(["repa=1", "lora_rank=4", f"init={tmp_path}"])
