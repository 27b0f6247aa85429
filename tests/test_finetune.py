"""Fine-tuning on footage: LoRA adapters through PEFT and full fine-tunes, the disk cache of
latents and text states, exact resume, using adapters, merging them, and every bad input."""

import json
import os
import shutil

import numpy as np
import pytest
import torch

from footage import make_footage, scene, write
from kinema.checkpoint import read_index
from kinema.cli import main
from kinema.config import preset
from kinema.data.cache import DiskCache
from kinema.errors import CheckpointError, InputError
from kinema.finetuning import finetune
from kinema.models import lora
from kinema.pipeline import load
from kinema.train import train

TINY = dict(frames=5, height=16, width=16, steps=2, progress=False, watermark=False)  # the model itself


@pytest.fixture(scope="module")
def footage(tmp_path_factory):
    root = tmp_path_factory.mktemp("footage")
    make_footage(root)
    return root


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A tiny base model (16x16 and 16x24 buckets) whose blocks are not all zero (adaLN-Zero starts
    them at zero: an adapter on them would change nothing to see)."""
    runs = tmp_path_factory.mktemp("base")
    train("autoencoder", preset("autoencoder", "tiny"), runs / "ae", max_steps=2, progress=False)
    cfg = preset("transformer", "tiny").override(["shapes=5x16x16,5x16x24", "lr=0.02", "warmup_steps=1"])
    train("transformer", cfg, runs / "t", max_steps=3, autoencoder=runs / "ae", progress=False)
    return runs / "t"


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, footage, base):
    out = tmp_path_factory.mktemp("ft") / "style"
    summary = finetune(footage, out, model=base, lora_rank=4, max_steps=4, trigger="sks", lr=0.05,
                       validate_every=4, progress=False)
    return out, summary


def frames_of(pipe, prompt="sks a red circle", seed=0):
    return pipe.generate(prompt, seed=seed, **TINY).frames


# ------------------------------------------------------------------ training

def test_a_lora_run_trains_only_the_adapter_and_writes_a_peft_folder(lora_run, base):
    out, summary = lora_run
    assert summary["step"] == 4 and 0 < summary["trained_params"] < summary["params"] / 5
    folder = out / "model" / "adapter"
    for f in ("adapter_config.json", "adapter_model.safetensors", "kinema_adapter.json", "checksums.sha256"):
        assert (folder / f).is_file(), f
    meta = json.loads((folder / "kinema_adapter.json").read_text())
    assert meta["trigger"] == "sks" and meta["steps"] == 4
    assert meta["base_digest"] == lora.base_digest(load(base).transformer)
    assert read_index(out / "model")["components"] == []  # the base is not copied
    assert (out / "samples" / "step_000004.png").is_file()
    # the base's shapes plus stills: every bucket of the footage, videos and photos
    assert {"1x16x16", "1x16x24", "5x16x16", "5x16x24"} <= set(read_index(out / "model")["trained_shapes"])
    assert summary["clips"] > 0


def test_validation_prompts_come_with_and_without_the_trigger(footage, base, tmp_path):
    from kinema.data.source import open_sources
    from kinema.finetuning import recipe
    from kinema.tasks import TransformerTask
    cfg = recipe(base, [str(footage)], trigger="sks")
    data = open_sources(cfg.data, seed=0, fps=8.0, shapes=[(5, 16, 16), (1, 16, 16)], trigger="sks", progress=False)
    task = TransformerTask(cfg.override(["shapes=5x16x16,1x16x16"]), data, torch.device("cpu"), autoencoder=base,
                           cache=tmp_path / "cache", progress=False)
    task.after_resume(tmp_path)
    prompts = task.prompts()
    assert any(p.startswith("sks") for p in prompts) and any(not p.startswith("sks") for p in prompts)
    assert "sks a busy street at dusk" in prompts and "a busy street at dusk" in prompts


def test_a_second_run_encodes_nothing_and_an_edited_file_is_encoded_again(tmp_path, base):
    root = tmp_path / "clips"
    root.mkdir()
    for i in range(3):
        write(scene(i, 9, 16, 16), root / f"c{i}.mp4", 8)
    cache = tmp_path / "cache"
    first = finetune(root, tmp_path / "a", model=base, lora_rank=2, max_steps=1, cache=cache, progress=False)
    assert first["encoded"] == first["clips"] > 0
    latents_files = sorted((cache / "latents").rglob("*.safetensors"))
    assert len(latents_files) == first["clips"] and any((cache / "text").rglob("*.safetensors"))
    second = finetune(root, tmp_path / "b", model=base, lora_rank=2, max_steps=1, cache=cache, progress=False)
    assert second["encoded"] == 0 and second["clips"] == first["clips"]
    # edit one file (other frames, so also another size and time): only its windows are encoded again
    write(scene(7, 9, 16, 16), root / "c1.mp4", 8)
    os.utime(root / "c1.mp4", ns=(10**18, 10**18))
    third = finetune(root, tmp_path / "c", model=base, lora_rank=2, max_steps=1, cache=cache, progress=False)
    per_file = first["clips"] // 3
    assert third["encoded"] == per_file


def test_another_autoencoder_never_reads_the_cache_of_the_first(tmp_path, base):
    from kinema.data.cache import entry_key
    store = DiskCache(tmp_path)
    store.put("latents", entry_key("latents", "ae-one", "clip"), {"latents": torch.ones(2)})
    assert store.get("latents", entry_key("latents", "ae-two", "clip")) is None
    assert torch.equal(store.get("latents", entry_key("latents", "ae-one", "clip"))["latents"], torch.ones(2))
    # a torn entry is a miss (encoded again), not an error
    path = store.path("latents", entry_key("latents", "ae-one", "clip"))
    path.write_bytes(path.read_bytes()[:10])
    assert store.get("latents", entry_key("latents", "ae-one", "clip")) is None


def test_a_lora_fine_tune_resumes_exactly(tmp_path, footage, base):
    from test_resume import assert_same_state
    kw = dict(model=base, lora_rank=4, trigger="sks", settings=["checkpoint_every=1000", "log_every=1"],
              cache=tmp_path / "cache", progress=False)
    finetune(footage, tmp_path / "straight", max_steps=6, **kw)
    finetune(footage, tmp_path / "split", max_steps=3, settings=["max_steps=6", "checkpoint_every=1000",
                                                                  "log_every=1"],
             **{k: v for k, v in kw.items() if k != "settings"})
    summary = finetune(footage, tmp_path / "split", resume=True, max_steps=6, **kw)
    assert summary["step"] == 6 and summary["encoded"] == 0
    assert_same_state(tmp_path / "straight", tmp_path / "split")
    a = lora.read_adapter(tmp_path / "straight")[1]
    b = lora.read_adapter(tmp_path / "split")[1]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)


def test_a_full_fine_tune_is_a_whole_model(tmp_path, footage, base):
    out = tmp_path / "full"
    summary = finetune(footage, out, model=base, full=True, max_steps=2, lr=0.01, progress=False)
    assert summary["trained_params"] == summary["params"]
    assert set(read_index(out / "model")["components"]) == {"autoencoder", "transformer"}
    assert not np.array_equal(frames_of(load(out)), frames_of(load(base)))


def test_torchrun_fine_tunes_a_lora(tmp_path, footage, base):
    import subprocess
    import sys
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "kinema",
           "finetune", str(footage), "--model", str(base), "--out", str(tmp_path / "r"), "--lora-rank", "2",
           "--max-steps", "2", "--batch-size", "2", "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    reports = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert reports and reports[0]["world_size"] == 2 and reports[0]["step"] == 2
    assert (tmp_path / "r" / "model" / "adapter" / "adapter_model.safetensors").is_file()


# ------------------------------------------------------------------ using adapters

def test_scale_zero_and_a_fresh_adapter_are_the_base_model_exactly(lora_run, base, tmp_path):
    out, _ = lora_run
    pipe = load(base)
    reference = frames_of(pipe)
    pipe.load_lora(out, scale=0.0)
    assert np.array_equal(frames_of(pipe), reference)
    pipe.set_lora_scale(1.0)
    tuned = frames_of(pipe)
    assert not np.array_equal(tuned, reference)
    pipe.unload_lora()
    assert np.array_equal(frames_of(pipe), reference)
    # a fresh adapter (step 0: PEFT starts B at zero) adds exactly nothing
    fresh = load(base)
    config = lora.lora_config(fresh.transformer, 4)
    digest = lora.base_digest(fresh.transformer)
    lora.attach(fresh.transformer, config, "fresh")
    assert np.array_equal(frames_of(fresh), reference)
    lora.save_adapter(tmp_path / "fresh", fresh.transformer, config, "fresh", {"base_digest": digest})
    again = load(base)
    again.load_lora(tmp_path / "fresh")
    assert np.array_equal(frames_of(again), reference)


def test_peft_itself_loads_a_kinema_adapter(lora_run, base):
    from peft import PeftModel
    from kinema.checkpoint import load_component
    from kinema.models.transformer import TransformerConfig, VideoTransformer
    out, _ = lora_run
    ours = load(base).transformer
    ours_name = lora.adapter_name(out, [])
    lora.load_adapter(ours, out, ours_name)
    plain = load_component(base / "model" / "transformer", lambda c: VideoTransformer(TransformerConfig.from_dict(c)))
    theirs = PeftModel.from_pretrained(plain, str(out / "model" / "adapter")).eval()
    torch.manual_seed(0)
    x, t = torch.randn(2, 8, 2, 2, 2), torch.rand(2, 2)
    text, mask = torch.randn(2, 3, 384), torch.ones(2, 3, dtype=torch.bool)
    with torch.no_grad():
        a, b = ours(x, t, text, mask), theirs(x, t, text, mask)
        base_out = load(base).transformer(x, t, text, mask)
    assert torch.equal(a, b) and not torch.equal(a, base_out)


def test_a_run_loads_as_a_model_and_two_adapters_combine(lora_run, base, tmp_path, footage):
    out, _ = lora_run
    with_lora = load(base)
    with_lora.load_lora(out)
    assert np.array_equal(frames_of(load(out)), frames_of(with_lora))  # the run folder: base + its adapter
    other = tmp_path / "other"
    finetune(footage, other, model=base, lora_rank=2, max_steps=2, lr=0.05, cache=tmp_path / "c", progress=False)
    both = load(base)
    a, b = both.load_lora(out, 1.0), both.load_lora(other, 0.5)
    assert a != b and both.loras[b]["scale"] == 0.5
    mixed = frames_of(both)
    both.set_lora_scale(0.0, b)
    assert np.array_equal(frames_of(both), frames_of(with_lora))
    both.set_lora_scale(0.5, b)
    assert np.array_equal(frames_of(both), mixed)


def test_fused_adapters_give_the_same_video_and_unfuse_restores(lora_run, base):
    out, _ = lora_run
    pipe = load(base)
    pipe.load_lora(out, 0.8)
    x = torch.randn(1, 8, 2, 2, 2)
    t = torch.rand(1, 2)
    text, mask = torch.randn(1, 3, 384), torch.ones(1, 3, dtype=torch.bool)
    with torch.no_grad():
        unfused = pipe.transformer(x, t, text, mask)
        pipe.fuse_lora()
        fused = pipe.transformer(x, t, text, mask)
        with pytest.raises(InputError, match="unfuse"):
            pipe.set_lora_scale(0.5)
        pipe.unfuse_lora()
        again = pipe.transformer(x, t, text, mask)
    torch.testing.assert_close(fused, unfused, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(again, unfused, rtol=1e-4, atol=1e-5)


def test_cli_generates_with_lora_and_export_merges_it(lora_run, base, tmp_path, capsys):
    out, _ = lora_run
    video = tmp_path / "v.mp4"
    assert main(["generate", "sks a red circle", "--model", str(base), "--lora", f"{out}:0.7", "--frames", "5",
                 "--height", "16", "--width", "16", "--steps", "2", "--out", str(video), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["loras"][0]["scale"] == 0.7 and result["loras"][0]["trigger"] == "sks"
    merged = tmp_path / "merged"
    assert main(["export", str(out), "--merge-lora", "--dtype", "float32", "--out", str(merged)]) == 0
    assert read_index(merged)["merged_loras"][0]["scale"] == 1.0
    pipe = load(merged)
    assert not pipe.loras  # standalone: no adapter, no base needed
    x, t = torch.randn(1, 8, 2, 2, 2), torch.rand(1, 2)
    text = torch.randn(1, 3, 384)
    with torch.no_grad():
        torch.testing.assert_close(pipe.transformer(x, t, text), load(out).transformer(x, t, text),
                                   rtol=1e-4, atol=1e-5)


def test_an_adapter_for_another_base_is_refused_naming_both(lora_run, tmp_path):
    out, _ = lora_run
    runs = tmp_path
    train("autoencoder", preset("autoencoder", "tiny"), runs / "ae", max_steps=1, progress=False)
    train("transformer", preset("transformer", "tiny").override(["seed=5"]), runs / "other", max_steps=1,
          autoencoder=runs / "ae", progress=False)
    pipe = load(runs / "other")
    with pytest.raises(CheckpointError, match="another base model") as e:
        pipe.load_lora(out)
    meta = json.loads((out / "model" / "adapter" / "kinema_adapter.json").read_text())
    assert meta["base_digest"] in str(e.value) and lora.base_digest(pipe.transformer) in str(e.value)
    assert not pipe.loras and not lora.adapters(pipe.transformer)  # nothing half-loaded


# ------------------------------------------------------------------ bad input

def test_bad_ranks_alphas_and_targets_are_refused(base):
    t = load(base).transformer
    for rank in (0, -1, 33, 10_000):  # the tiny transformer's layers are 32 wide
        with pytest.raises(InputError, match="rank"):
            lora.lora_config(t, rank)
    with pytest.raises(InputError, match="alpha"):
        lora.lora_config(t, 4, alpha=-1.0)
    with pytest.raises(InputError, match="targets"):
        lora.lora_config(t, 4, targets="attn,nonsense")


@pytest.mark.parametrize("spec,needle", [("runs/x:abc", "must be a number"), ("runs/x:nan", "in \\[-10, 10\\]"),
                                         ("", "needs a path")])
def test_bad_lora_specs(spec, needle):
    with pytest.raises(InputError, match=needle):
        lora.parse_lora(spec)


def test_lora_specs_parse():
    assert lora.parse_lora("runs/style") == ("runs/style", 1.0)
    assert lora.parse_lora("runs/style:0.25") == ("runs/style", 0.25)


def _cli_error(capsys, argv) -> str:
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse's own errors (a flag's value out of range)
        rc = e.code
    assert rc == 2
    err = [line for line in capsys.readouterr().err.strip().splitlines() if "%|" not in line and not line.startswith("warning: ")]
    assert len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in err[0], err
    return err[0]


def test_cli_bad_inputs_are_one_line_errors_and_write_nothing(tmp_path, capsys, base, lora_run):
    out, _ = lora_run
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("nothing here")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.mp4").write_bytes(b"\x00" * 100)
    run = ["--model", str(base), "--out"]
    assert "no videos or images" in _cli_error(capsys, ["finetune", str(empty), *run, str(tmp_path / "r1")])
    assert "could not be read" in _cli_error(capsys, ["finetune", str(broken), *run, str(tmp_path / "r2")])
    assert "no such folder" in _cli_error(capsys, ["finetune", str(tmp_path / "nope"), *run, str(tmp_path / "r3")])
    assert "rank" in _cli_error(capsys, ["finetune", str(broken), *run, str(tmp_path / "r4"), "--lora-rank", "0"])
    assert "alpha" in _cli_error(capsys, ["finetune", str(broken), *run, str(tmp_path / "r5"), "--lora-alpha", "0"])
    assert "must be a number" in _cli_error(capsys, ["generate", "x", "--model", str(base), "--lora",
                                                     f"{out}:x", "--out", str(tmp_path / "v.mp4")])
    # a corrupt adapter and one for another model: refused before anything is generated
    bad = tmp_path / "bad_adapter"
    shutil.copytree(out / "model" / "adapter", bad)
    (bad / "adapter_model.safetensors").write_bytes(b"garbage")
    assert "checksum" in _cli_error(capsys, ["generate", "x", "--model", str(base), "--lora", str(bad),
                                             "--out", str(tmp_path / "v.mp4")])
    (bad / "checksums.sha256").unlink()
    assert "corrupt" in _cli_error(capsys, ["generate", "x", "--model", str(base), "--lora", str(bad),
                                            "--out", str(tmp_path / "v.mp4")])
    assert "not a LoRA adapter" in _cli_error(capsys, ["generate", "x", "--model", str(base), "--lora",
                                                       str(tmp_path), "--out", str(tmp_path / "v.mp4")])
    assert not (tmp_path / "v.mp4").exists()
    assert not any((tmp_path / f"r{i}").exists() for i in range(1, 6))
    assert "--merge-lora" in _cli_error(capsys, ["export", str(out), "--out", str(tmp_path / "m")])
    assert not (tmp_path / "m").exists()


def test_rank_above_the_layer_width_is_refused_at_the_cli(tmp_path, capsys, base, footage):
    err = _cli_error(capsys, ["finetune", str(footage), "--model", str(base), "--out", str(tmp_path / "r"),
                              "--lora-rank", "64", "--max-steps", "1"])
    assert "rank" in err and "32" in err
    assert not (tmp_path / "r").exists()


def test_an_adapter_written_while_killed_leaves_the_old_one(lora_run, tmp_path, base, monkeypatch):
    import kinema.atomic as atomic
    out, _ = lora_run
    pipe = load(base)
    pipe.load_lora(out)
    name = next(iter(pipe.loras))
    target = tmp_path / "adapter"
    config = lora.read_adapter(out)[0]
    lora.save_adapter(target, pipe.transformer, config, name, {"x": 1})
    before = (target / "adapter_model.safetensors").read_bytes()

    def fault(stage):
        if stage == "written":
            raise KeyboardInterrupt
    monkeypatch.setattr(atomic, "_fault", fault)
    with pytest.raises(KeyboardInterrupt):
        lora.save_adapter(target, pipe.transformer, config, name, {"x": 2})
    assert (target / "adapter_model.safetensors").read_bytes() == before
    assert json.loads((target / "kinema_adapter.json").read_text())["x"] == 1


def test_image_to_video_from_a_still_of_the_footage_keeps_working(lora_run, base, footage):
    from kinema.video import Video
    out, _ = lora_run
    pipe = load(out)
    still = Video.read(footage / "photo.png", height=16, width=16)
    video = pipe.generate("sks a still photograph", image=still, **TINY)
    rt = pipe.roundtrip([still])[0]
    assert np.array_equal(video.frames[0], rt.frames[0])  # frame 0 is the still's round trip, as in the base


def test_prior_preservation_mixes_the_base_data_into_every_batch(tmp_path, footage, base):
    """--prior: the last clips of every batch are the base model's own procedural clips with their
    plain captions (no trigger), encoded once into the cache's prior/ entries."""
    from kinema.data.source import open_sources
    from kinema.finetuning import recipe
    from kinema.tasks import TransformerTask
    cfg = recipe(base, [str(footage)], trigger="sks", batch_size=4, prior=0.5).override(["prior_clips=6"])
    shapes = [(5, 16, 16)]
    data = open_sources(cfg.data, seed=0, fps=cfg.fps, shapes=shapes, trigger="sks", windows="uniform", progress=False)
    task = TransformerTask(cfg.override(["shapes=5x16x16"]), data, torch.device("cpu"), autoencoder=base,
                           cache=tmp_path / "cache", progress=False)
    task.after_resume(tmp_path / "run")
    assert task.prior_n == 2 and len(list((tmp_path / "cache" / "prior").rglob("*.safetensors"))) == 6
    for step in range(3):
        x, captions, _ = task.batch(step, 0, 1)
        assert x.shape[0] == 4 and all(c.startswith("sks") for c in captions[:2])
        assert not any("sks" in c for c in captions[2:]) and all(c in task.prior[(5, 16, 16)][1] for c in captions[2:])
    again = TransformerTask(cfg.override(["shapes=5x16x16"]), data, torch.device("cpu"), autoencoder=base,
                            cache=tmp_path / "cache", progress=False)
    again.after_resume(tmp_path / "run")  # from the cache: the same clips, the same batches
    assert torch.equal(again.batch(2, 0, 1)[0], task.batch(2, 0, 1)[0])
    with pytest.raises(InputError, match="batch of at least 2"):
        TransformerTask(cfg.override(["shapes=5x16x16", "batch_size=1"]), data, torch.device("cpu"), autoencoder=base,
                        cache=tmp_path / "cache", progress=False)
