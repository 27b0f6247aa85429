"""Training loop, checkpoints and text-to-video generation with tiny models."""

import json
import math
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from kinema.checkpoint import read_index
from kinema.cli import main
from kinema.config import preset
from kinema.errors import CheckpointError, InputError, TrainingError
from kinema.data.synthetic import SyntheticClips
from kinema.pipeline import load, load_autoencoder
from kinema.tasks import random_crops
from kinema.train import train


@pytest.fixture(scope="module")
def ae_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "ae"
    train("autoencoder", preset("autoencoder", "tiny"), out, max_steps=30, progress=False)
    return out


@pytest.fixture(scope="module")
def t2v_run(tmp_path_factory, ae_run):
    out = tmp_path_factory.mktemp("runs") / "t2v"
    train("transformer", preset("transformer", "tiny"), out, max_steps=20, autoencoder=ae_run, progress=False)
    return out


def _losses(run):
    return [json.loads(line)["loss"] for line in (run / "log.jsonl").read_text().splitlines()]


def test_autoencoder_training_lowers_the_loss_and_writes_a_model_folder(ae_run):
    losses = _losses(ae_run)
    assert losses[-1] < 0.7 * losses[0]
    index = read_index(ae_run / "model")
    assert index["components"] == ["autoencoder"] and index["recipe"]["steps"] == 30
    for f in ("model/autoencoder/config.json", "model/autoencoder/model.safetensors", "model/train_state/state.json",
              "loss.png", "samples/step_000025.png"):
        assert (ae_run / f).is_file(), f


def test_transformer_run_is_a_loadable_model_that_generates_deterministically(t2v_run):
    assert set(read_index(t2v_run / "model")["components"]) == {"autoencoder", "transformer"}
    pipe = load(t2v_run)
    a = pipe.generate("a red circle moves left", frames=5, height=16, width=16, steps=3, seed=1, progress=False)
    b = pipe.generate("a red circle moves left", frames=5, height=16, width=16, steps=3, seed=1, progress=False)
    c = pipe.generate("a red circle moves left", frames=5, height=16, width=16, steps=3, seed=2, progress=False)
    assert a.frames.shape == (5, 16, 16, 3) and np.array_equal(a.frames, b.frames)
    assert not np.array_equal(a.frames, c.frames)
    empty = pipe.generate("", frames=1, height=16, width=16, steps=2, progress=False)  # unconditional
    assert empty.num_frames == 1


def test_random_crops_are_aligned_windows_drawn_from_the_seed():
    video = torch.arange(2 * 3 * 5 * 32 * 48, dtype=torch.float32).reshape(2, 3, 5, 32, 48)
    a, b = random_crops(video, 16, seed=1), random_crops(video, 16, seed=1)
    assert a.shape == (2, 3, 5, 16, 16) and torch.equal(a, b)
    offsets = set()
    for seed in range(20):
        for v, c in zip(video, random_crops(video, 16, seed=seed)):
            y, x = divmod(int(c[0, 0, 0, 0] - v[0, 0, 0, 0]), 48)
            assert y % 8 == 0 and x % 8 == 0 and torch.equal(c, v[..., y:y + 16, x:x + 16])
            offsets.add((y, x))
    assert len(offsets) > 6  # (32-16)/8+1 = 3 rows x 5 columns of windows, most of them drawn
    assert random_crops(video, 0, seed=0) is video
    with pytest.raises(InputError, match="multiple of 8"):
        random_crops(video, 12, seed=0)


def test_set_overrides_training_and_model_settings():
    cfg = preset("transformer", "tiny").override(["lr=0.01", "model.patch=2", "model.dim=64", "ema_decay=0.5"])
    assert (cfg.lr, cfg.ema_decay, cfg.model["patch"], cfg.model["dim"]) == (0.01, 0.5, 2, 64)
    assert preset("transformer", "tiny").model["patch"] == 1  # the preset itself is untouched
    for bad in ("lr", "nonsense=1", "model=3", "lr=fast"):
        with pytest.raises(InputError, match="--set"):
            preset("transformer", "tiny").override([bad])
    cfg = preset("transformer", "tiny").override(["condition_masks.image=0.7", "condition_masks.inpaint=0"])
    assert cfg.condition_masks["image"] == 0.7 and cfg.condition_masks["inpaint"] == 0
    assert cfg.condition_masks["text"] == preset("transformer", "tiny").condition_masks["text"]


def test_init_fine_tunes_from_another_models_weights(tmp_path, ae_run, t2v_run):
    cfg = preset("transformer", "tiny").override([f"init={t2v_run}"])
    train("transformer", cfg, tmp_path / "ft", max_steps=0, autoencoder=ae_run, progress=False)
    a = load_file(str(t2v_run / "model" / "transformer" / "model.safetensors"))
    b = load_file(str(tmp_path / "ft" / "model" / "transformer" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)  # step 0 of the fine-tune is the source model
    assert read_index(tmp_path / "ft" / "model")["recipe"]["config"]["init"] == str(t2v_run)
    with pytest.raises(CheckpointError, match="init from .* has other sizes"):
        train("transformer", cfg.override(["model.dim=64"]), tmp_path / "ft2", max_steps=0, autoencoder=ae_run,
              progress=False)
    with pytest.raises(CheckpointError, match="no transformer there"):
        train("transformer", preset("transformer", "tiny").override([f"init={ae_run}"]), tmp_path / "ft3",
              max_steps=0, autoencoder=ae_run, progress=False)


def test_init_keeps_what_matches_and_starts_a_new_head_fresh(tmp_path):
    """A classifier with another readout, started from a trained one: the trunk and the pooled
    heads come from the source, the object readout is new (the shipped classifier was made so)."""
    cells = preset("classifier", "tiny")
    src = train("classifier", cells, tmp_path / "cells", max_steps=3, progress=False)
    result = train("classifier", cells.override(["model.readout=objects", f"init={tmp_path / 'cells'}"]),
                   tmp_path / "objects", max_steps=0, progress=False)
    assert src["fresh"] == [] and result["fresh"] == ["objects"]
    a = load_file(str(tmp_path / "cells" / "model" / "classifier" / "model.safetensors"))
    b = load_file(str(tmp_path / "objects" / "model" / "classifier" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a if not k.startswith("cell_head"))
    assert "cell_head.0.weight" not in b and any(k.startswith("objects.") for k in b)


def test_interrupted_max_minutes_run_checkpoints(tmp_path):
    result = train("autoencoder", preset("autoencoder", "tiny"), tmp_path / "r", max_minutes=0, progress=False)
    assert result["step"] == 0 and (tmp_path / "r/model/train_state").is_dir()


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    cfg = preset("autoencoder", "tiny")
    cfg.checkpoint_every = 4
    train("autoencoder", cfg, tmp_path / "r", max_steps=4, progress=False)
    from kinema import tasks
    real = tasks.AutoencoderTask.loss
    monkeypatch.setattr(tasks.AutoencoderTask, "loss",
                        lambda self, m, x, g: (real(self, m, x, g)[0] * math.nan, {}))
    with pytest.raises(TrainingError, match="last good checkpoint .step 4"):
        train("autoencoder", cfg, tmp_path / "r", max_steps=10, resume=True, progress=False)
    assert json.loads((tmp_path / "r/model/train_state/state.json").read_text())["step"] == 4


def test_cli_resume_continues_the_runs_own_recipe(tmp_path, capsys):
    run = str(tmp_path / "r")
    base = ["train", "autoencoder", "--preset", "tiny", "--out", run, "--json"]
    assert main([*base, "--max-steps", "2", "--set", "lr=0.0011"]) == 0
    # no --preset and no --set: the run's own recipe, lr 0.0011, not the preset's
    assert main(["train", "autoencoder", "--out", run, "--json", "--max-steps", "3", "--resume"]) == 0
    state = json.loads((tmp_path / "r/model/train_state/state.json").read_text())
    assert state["step"] == 3 and state["config"]["lr"] == 0.0011
    capsys.readouterr()
    assert main([*base, "--max-steps", "4", "--resume", "--set", "grad_clip=0.5"]) == 0  # --set applies on top
    assert json.loads(capsys.readouterr().out)["changed"] == {"grad_clip": [1.0, 0.5]}  # and is reported
    state = json.loads((tmp_path / "r/model/train_state/state.json").read_text())
    assert state["step"] == 4 and state["config"]["lr"] == 0.0011 and state["config"]["grad_clip"] == 0.5
    code = main(["train", "transformer", "--preset", "tiny", "--out", run, "--resume"])
    assert code == 2 and "is a run of the autoencoder" in capsys.readouterr().err
    code = main(["train", "transformer", "--out", run, "--resume"])  # no --preset either: the same error
    assert code == 2 and "is a run of the autoencoder" in capsys.readouterr().err
    code = main(["train", "autoencoder", "--out", str(tmp_path / "new")])  # a new run needs a recipe
    assert code == 2 and "--preset is needed" in capsys.readouterr().err
    code = main(["train", "autoencoder", "--out", str(tmp_path / "new"), "--resume"])
    assert code == 2 and "nothing to resume" in capsys.readouterr().err


def test_training_refuses_to_overwrite_a_run_and_to_resume_nothing(tmp_path, ae_run):
    with pytest.raises(InputError, match="--resume"):
        train("autoencoder", preset("autoencoder", "tiny"), ae_run, max_steps=1, progress=False)
    with pytest.raises(CheckpointError, match="nothing to resume"):
        train("autoencoder", preset("autoencoder", "tiny"), tmp_path / "new", resume=True, progress=False)
    with pytest.raises(InputError, match="--autoencoder"):
        train("transformer", preset("transformer", "tiny"), tmp_path / "t", progress=False)


@pytest.mark.parametrize("kwargs, needle", [
    ({"frames": 16}, "13 or 17"), ({"height": 20}, "16 or 24"), ({"width": 4}, "multiple of 8"),
    ({"steps": 0}, "steps"), ({"guidance": -1}, "guidance"), ({"sampler": "ddim"}, "unknown sampler"),
])
def test_generate_rejects_bad_requests(t2v_run, kwargs, needle):
    with pytest.raises(InputError, match=needle):
        load(t2v_run).generate("x", progress=False, **kwargs)


def test_missing_corrupt_and_incompatible_checkpoints(tmp_path, t2v_run):
    with pytest.raises(CheckpointError, match="no such"):
        load(tmp_path / "nope")
    bad = tmp_path / "bad"
    shutil.copytree(t2v_run / "model", bad)
    (bad / "transformer" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="corrupt"):
        load(bad)
    old = tmp_path / "old"
    shutil.copytree(t2v_run / "model", old)
    cfg = json.loads((old / "transformer" / "config.json").read_text())
    (old / "transformer" / "config.json").write_text(json.dumps({**cfg, "_format": 0}))
    with pytest.raises(CheckpointError, match="format"):
        load(old)
    noT = tmp_path / "noT"
    shutil.copytree(t2v_run / "model", noT)
    shutil.rmtree(noT / "transformer")
    with pytest.raises(CheckpointError, match="no transformer"):
        load(noT)


def test_cli_generate_and_train(tmp_path, capsys, t2v_run):
    out = tmp_path / "clip.mp4"
    code = main(["generate", "a blue square moves right", "--model", str(t2v_run), "--frames", "5", "--height", "16",
                 "--width", "16", "--steps", "2", "--out", str(out), "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and out.is_file() and result["frames"] == 5 and result["seed"] == 0
    code = main(["generate", "x", "--model", str(tmp_path / "missing"), "--out", str(tmp_path / "y.mp4")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
    code = main(["train", "autoencoder", "--preset", "nope", "--out", str(tmp_path / "r")])
    assert code == 2 and "unknown preset" in capsys.readouterr().err
    code = main(["train", "autoencoder", "--preset", "tiny", "--out", str(tmp_path / "r"), "--set", "lr=fast"])
    assert code == 2 and "--set lr" in capsys.readouterr().err


def test_torchrun_ddp_trains_one_model(tmp_path):
    import subprocess
    import sys
    # --standalone: rendezvous on a free port, so runs on one host (parallel CI jobs) never meet;
    # --max-minutes: rank 0's clock is broadcast every step
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "kinema",
           "train", "autoencoder", "--preset", "tiny", "--out", str(tmp_path / "r"), "--max-steps", "4",
           "--max-minutes", "30", "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[:4000] + "\n...\n" + proc.stderr[-2000:]
    reports = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(reports) == 1 and reports[0]["world_size"] == 2 and reports[0]["step"] == 4
    index = read_index(tmp_path / "r" / "model")
    assert index["recipe"]["world_size"] == 2 and index["recipe"]["steps"] == 4


def test_latent_cache_is_built_once_and_reused(tmp_path, ae_run):
    cfg = preset("transformer", "tiny").override(["latent_cache=8"])
    train("transformer", cfg, tmp_path / "t", max_steps=3, autoencoder=ae_run, progress=False)
    cache = tmp_path / "t" / "cache" / "latents.safetensors"
    latents = load_file(str(cache))["latents"]
    assert latents.shape == (8, 8, 2, 2, 2)  # 8 clips of 5x16x16 -> (C=8, T=2, 2, 2)
    stamp = cache.stat().st_mtime_ns
    train("transformer", cfg, tmp_path / "t", max_steps=5, autoencoder=ae_run, resume=True, progress=False)
    assert cache.stat().st_mtime_ns == stamp
    assert json.loads((tmp_path / "t/model/train_state/state.json").read_text())["step"] == 5
    # latents from another autoencoder are stale: a run with a retrained one re-encodes the clips
    other = tmp_path / "ae2"
    shutil.copytree(ae_run, other)
    train("autoencoder", preset("autoencoder", "tiny"), other, max_steps=32, resume=True, progress=False)
    shutil.copytree(tmp_path / "t" / "cache", tmp_path / "t2" / "cache")
    train("transformer", cfg, tmp_path / "t2", max_steps=1, autoencoder=other, progress=False)
    fresh = load_file(str(tmp_path / "t2" / "cache" / "latents.safetensors"))["latents"]
    assert fresh.shape == latents.shape and not torch.equal(fresh, latents)


def test_shape_buckets_take_turns_and_cache_each_shape(tmp_path, ae_run):
    cfg = preset("transformer", "tiny").override(["latent_cache=4", "shapes=5x16x16,9x16x24"])
    out = tmp_path / "b"
    train("transformer", cfg, out, max_steps=2, autoencoder=ae_run, progress=False)
    assert load_file(str(out / "cache/5x16x16/latents.safetensors"))["latents"].shape == (4, 8, 2, 2, 2)
    assert load_file(str(out / "cache/9x16x24/latents.safetensors"))["latents"].shape == (4, 8, 3, 2, 3)
    assert read_index(out / "model")["trained_shapes"] == ["5x16x16", "9x16x24"]
    from kinema.tasks import TransformerTask
    from kinema.data.source import Mixture, ProceduralSource
    task = TransformerTask(cfg, Mixture([(ProceduralSource(0), 1.0)]), torch.device("cpu"), autoencoder=ae_run)
    task.after_resume(out)  # reuses the caches
    shapes = [tuple(task.batch(s, 0, 1)[0].shape[2:]) for s in range(4)]
    assert shapes == [(2, 2, 2), (3, 2, 3), (2, 2, 2), (3, 2, 3)]


def test_autoencoder_shape_buckets_take_turns():
    """The autoencoder trains on its shape buckets in turn (e.g. whole 64x64 and 128x128 clips)."""
    from kinema.tasks import AutoencoderTask
    from kinema.data.source import Mixture, ProceduralSource
    cfg = preset("autoencoder", "tiny").override(["shapes=5x16x16,9x24x32"])
    task = AutoencoderTask(cfg, Mixture([(ProceduralSource(0), 1.0)]), torch.device("cpu"))
    assert [tuple(task.batch(s, 0, 1)[0].shape[2:]) for s in range(3)] == [(5, 16, 16), (9, 24, 32), (5, 16, 16)]
    with pytest.raises(InputError, match="shapes"):
        preset("autoencoder", "tiny").override(["shapes=5x12x16"])


@pytest.mark.parametrize("shapes", ["16x16", "6x16x16", "5x12x16", "5x16xabc"])
def test_bad_shape_buckets_are_refused(shapes, ae_run, tmp_path):
    with pytest.raises(InputError, match="shapes"):
        train("transformer", preset("transformer", "tiny").override([f"shapes={shapes}"]), tmp_path / "x",
              max_steps=1, autoencoder=ae_run, progress=False)


def test_export_writes_a_lean_half_precision_model_that_generates_the_same(tmp_path, capsys, t2v_run):
    code = main(["export", str(t2v_run), "--out", str(tmp_path / "lean"), "--json"])
    assert code == 0 and json.loads(capsys.readouterr().out)["dtype"] == "float16"
    lean = tmp_path / "lean"
    assert not (lean / "train_state").exists()
    assert all(v.dtype == torch.float16 for v in load_file(str(lean / "transformer/model.safetensors")).values())
    kw = dict(frames=5, height=16, width=16, steps=3, seed=1, progress=False, watermark=False)
    a, b = load(t2v_run).generate("a red circle moves left", **kw), load(lean).generate("a red circle moves left", **kw)
    assert np.abs(a.frames.astype(int) - b.frames.astype(int)).mean() < 2.0  # float16 rounding only
    assert main(["export", str(t2v_run), "--out", str(lean)]) == 2  # never over an existing model
    assert "error: " in capsys.readouterr().err
    # the copy's sampling defaults can be set: what generate uses when not told
    tuned = tmp_path / "tuned"
    assert main(["export", str(t2v_run), "--out", str(tuned), "--steps", "3", "--guidance", "2.5",
                 "--guidance-interval", "0,0.5"]) == 0
    pipe = load(tuned)
    assert pipe.defaults["steps"] == 3 and pipe.defaults["guidance"] == 2.5
    assert pipe.defaults["guidance_interval"] == [0.0, 0.5]
    by_default = pipe.generate("a red circle moves left", **{**kw, "steps": None}).frames
    assert np.array_equal(by_default, pipe.generate("a red circle moves left", **kw).frames)  # steps: 3
    told = load(t2v_run).generate("a red circle moves left", guidance=2.5, guidance_interval=(0, 0.5), **kw)
    assert np.abs(told.frames.astype(int) - by_default.astype(int)).mean() < 2.0  # float16 rounding only


def test_generate_writes_a_contact_sheet_and_refuses_other_sheet_types(tmp_path, capsys, t2v_run):
    from kinema.video import Video
    args = ["generate", "a red circle", "--model", str(t2v_run), "--frames", "5", "--height", "16", "--width", "16",
            "--steps", "2", "--out", str(tmp_path / "a.mp4")]
    assert main([*args, "--sheet", str(tmp_path / "a.png")]) == 0
    sheet = Video.read(tmp_path / "a.png")
    assert sheet.num_frames == 1 and sheet.width > 5 * 16  # five frames side by side, scaled up
    capsys.readouterr()
    assert main([*args, "--sheet", str(tmp_path / "a.jpg")]) == 2
    assert "--sheet" in capsys.readouterr().err and not (tmp_path / "a.jpg").exists()


def test_missing_default_model_is_a_clear_error(tmp_path, monkeypatch, capsys):
    import kinema.pipeline as pipeline
    monkeypatch.setattr(pipeline, "DEFAULT_MODEL", tmp_path / "nothing")
    with pytest.raises(CheckpointError, match="default model is missing"):
        load()
    assert main(["generate", "a red circle", "--out", str(tmp_path / "x.mp4")]) == 2
    assert "default model is missing" in capsys.readouterr().err


def test_every_preset_is_a_valid_config_inside_the_limits():
    from kinema.config import PRESETS
    for component, name in PRESETS:
        cfg = preset(component, name)  # checked when made: ranges, model settings, shapes, size
        assert cfg.component == component and cfg.frames <= 129


@pytest.mark.parametrize("setting, needle", [("model.text_dim=1", "text_dim must be 384"),
                                             ("model.dim=" + "[" * 5000, "dim")])
def test_model_settings_a_run_cannot_use_are_refused_when_parsed(setting, needle):
    with pytest.raises(InputError, match=needle):
        preset("transformer", "tiny").override([setting])


def test_an_anchored_autoencoder_keeps_the_init_models_latents(tmp_path):
    """anchor > 0 (with init) keeps the encoder's latents of procedural clips where the init model
    put them, while it learns other data; without it they drift."""
    base = tmp_path / "base"
    train("autoencoder", preset("autoencoder", "tiny"), base, max_steps=10, progress=False)
    runs = {}
    for anchor in (0.0, 10.0):
        cfg = preset("autoencoder", "tiny").override([f"init={base}", "data=natural:3,procedural:1",
                                                      f"anchor={anchor}", "lr=1e-2", "warmup_steps=0"])
        train("autoencoder", cfg, tmp_path / f"a{anchor:g}", max_steps=12, progress=False)
        runs[anchor] = load_autoencoder(tmp_path / f"a{anchor:g}")
    x = torch.stack([SyntheticClips("heldout", 0, 5, 16, 16, 8.0)[i].video.to_tensor() for i in range(8)])
    ref = load_autoencoder(base)
    with torch.no_grad():  # raw latents: the unanchored run also renormalises, which would hide its drift
        z0 = ref.encode(x, normalize=False)
        drift = {a: float((m.encode(x, normalize=False) - z0).pow(2).mean()) for a, m in runs.items()}
    assert drift[10.0] < 0.2 * drift[0.0], drift
    torch.testing.assert_close(runs[10.0].latent_std, ref.latent_std)  # the init model's statistics kept
    with pytest.raises(InputError, match="--init"):
        train("autoencoder", preset("autoencoder", "tiny").override(["anchor=1"]), tmp_path / "x", max_steps=1,
              progress=False)


def test_a_decoder_only_fine_tune_keeps_the_encoder_and_its_latents_exactly(tmp_path):
    """decoder_only=true (with init) trains the decoder alone: the encoder's weights and the latent
    statistics stay the init model's bit for bit (so a transformer trained on its latents still
    fits), the decoder learns the new data, and a stop + resume continues the same run."""
    base = tmp_path / "base"
    train("autoencoder", preset("autoencoder", "tiny"), base, max_steps=10, progress=False)
    cfg = preset("autoencoder", "tiny").override([f"init={base}", "data=natural", "decoder_only=true",
                                                  "lr=1e-2", "warmup_steps=0", "checkpoint_every=6"])
    train("autoencoder", cfg, tmp_path / "dec", max_steps=12, progress=False)
    ref, dec = load_autoencoder(base), load_autoencoder(tmp_path / "dec")
    own, new = ref.state_dict(), dec.state_dict()
    enc = [k for k in own if k.split(".")[0] in ("encoder", "enc_out", "to_moments", "latent_mean", "latent_std")]
    assert enc and all(torch.equal(own[k], new[k]) for k in enc)
    changed = [k for k in own if k.split(".")[0] in ("decoder", "to_rgb") and not torch.equal(own[k], new[k])]
    assert changed
    from kinema.data.natural import NaturalClips
    nat = NaturalClips(seed=5)
    x = torch.stack([nat.clip((5, 16, 16), i).video.to_tensor() for i in range(8)])
    with torch.no_grad():
        err = {name: float((m.decode(m.encode(x)) - x).pow(2).mean()) for name, m in (("ref", ref), ("dec", dec))}
    assert err["dec"] < err["ref"], err  # the decoder learned natural clips it was not shown
    # stopped at step 6 and resumed: the same model as the uninterrupted run
    train("autoencoder", cfg, tmp_path / "half", max_steps=6, progress=False)
    train("autoencoder", None, tmp_path / "half", max_steps=12, resume=True, progress=False)
    half = load_autoencoder(tmp_path / "half").state_dict()
    assert all(torch.allclose(half[k], new[k], atol=1e-6) for k in new)
    with pytest.raises(InputError, match="--init"):
        preset("autoencoder", "tiny").override(["decoder_only=true"])
    with pytest.raises(InputError, match="anchor"):
        preset("autoencoder", "tiny").override([f"init={base}", "decoder_only=true", "anchor=1"])


def test_snapshots_keep_lean_copies_for_learning_curves(tmp_path, ae_run):
    """snapshot_every=N keeps out/snapshots/step_N/: the EMA model at that step (as kinema export
    writes it) with its training seconds; one missing after a stop is made again on resume."""
    from kinema.checkpoint import read_index
    cfg = preset("transformer", "tiny").override(["snapshot_every=4", "checkpoint_every=1000"])
    out = tmp_path / "run"
    train("transformer", cfg, out, max_steps=8, autoencoder=ae_run, progress=False)
    snaps = sorted(p.name for p in (out / "snapshots").iterdir())
    assert snaps == ["step_000004", "step_000008"]
    final = load_file(str(out / "model" / "transformer" / "model.safetensors"))
    last = load_file(str(out / "snapshots" / "step_000008" / "transformer" / "model.safetensors"))
    assert all(last[k].dtype == torch.float16 and torch.allclose(last[k].float(), final[k], atol=1e-2) for k in final)
    early = load_file(str(out / "snapshots" / "step_000004" / "transformer" / "model.safetensors"))
    assert any(not torch.equal(early[k], last[k]) for k in last)  # another model: the one of step 4
    info = read_index(out / "snapshots" / "step_000004")["snapshot"]
    assert info["step"] == 4 and info["train_seconds"] > 0
    shutil.rmtree(out / "snapshots" / "step_000008")  # e.g. killed while it was written
    train("transformer", None, out, max_steps=8, resume=True, autoencoder=ae_run, progress=False)
    assert (out / "snapshots" / "step_000008" / "model_index.json").is_file()
    assert load(out / "snapshots" / "step_000004") is not None
