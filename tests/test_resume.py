"""Interrupted training resumes exactly: clean stops, kill -9 at random moments and at every step
of a checkpoint write, torn logs, full disks, and two trainings racing for one run folder."""

import json
import os
import random
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from kinema.checkpoint import lock_run
from kinema.cli import main
from kinema.config import preset
from kinema.errors import InputError, WriteError
from kinema.pipeline import load_autoencoder
from kinema.train import train

# Runs one training in a child process, optionally killed with SIGKILL: after `delay` seconds of
# training, or at the n-th time a checkpoint write reaches `fault` (atomic._fault points, or
# "save" for inside a weights file's write).
CHILD = r"""
import json, os, signal, sys, threading, time
args = json.loads(sys.argv[1])
import kinema.atomic as atomic, kinema.checkpoint as checkpoint
from kinema.config import TrainConfig
from kinema.train import train
def die():
    os.kill(os.getpid(), signal.SIGKILL)
if args.get("fault"):
    point, n = args["fault"]
    seen = [0]
    def hit(name):
        if name == point:
            seen[0] += 1
            if seen[0] == n:
                die()
    atomic._fault = hit
    if point == "save":
        save = checkpoint.save_file
        def save_then_die(*a, **k):
            hit("save")
            return save(*a, **k)
        checkpoint.save_file = save_then_die
if not args.get("exchange", True):
    atomic.exchange = lambda a, b: False
t0 = time.monotonic()
if args.get("delay") is not None:
    threading.Timer(args["delay"], die).start()
cfg = TrainConfig.from_dict(args["cfg"]) if args.get("cfg") else None
train(args["component"], cfg, args["out"], max_steps=args["steps"], resume=args["resume"],
      autoencoder=args.get("ae"), progress=False)
print(json.dumps({"train_seconds": time.monotonic() - t0}), flush=True)
os._exit(0)
"""


def child(**args):
    r = subprocess.run([sys.executable, "-c", CHILD, json.dumps(args)], capture_output=True, text=True, timeout=300)
    return r


def state(run):
    return load_file(str(run / "model" / "train_state" / "state.safetensors"))


def assert_same_state(a, b):
    a, b = state(a), state(b)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)


def logged_steps(run):
    return [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]


def leftovers(run):
    return sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.name.endswith((".part", ".old")))


@pytest.fixture(scope="module")
def ae_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "ae"
    train("autoencoder", preset("autoencoder", "tiny"), out, max_steps=20, progress=False)
    return out


def config(component):
    cfg = preset(component, "tiny")
    cfg.checkpoint_every = 1000  # only the final checkpoint of each sitting
    cfg.log_every = 1
    if component == "autoencoder":
        cfg.crop = 8  # random crops are part of the data position too
    if component == "classifier":
        cfg.batch_size = 4
    return cfg


@pytest.mark.parametrize("component", ["autoencoder", "transformer", "classifier"])
def test_a_stopped_and_resumed_run_equals_an_uninterrupted_one(component, tmp_path, ae_run):
    cfg = config(component)
    if component == "transformer":
        assert len(cfg.condition_masks) == 6  # every mode drawn: the draw must not depend on dict order
    ae = ae_run if component == "transformer" else None
    train(component, cfg, tmp_path / "straight", max_steps=12, autoencoder=ae, progress=False)
    train(component, cfg, tmp_path / "split", max_steps=5, autoencoder=ae, progress=False)
    # no config: the run's own, read back from state.json (sorted keys, JSON lists for tuples)
    summary = train(component, None, tmp_path / "split", max_steps=12, resume=True, autoencoder=ae, progress=False)
    assert summary["changed"] == {} and summary["step"] == 12
    assert_same_state(tmp_path / "straight", tmp_path / "split")
    assert logged_steps(tmp_path / "split") == list(range(1, 13))


def killed_at_step(args, run, step, jitter):
    """Run a training child and SIGKILL it `jitter` seconds after its log reaches `step` rows (or
    let it finish): a random moment of a step, a log write or a checkpoint write."""
    proc = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    log = run / "log.jsonl"
    while proc.poll() is None:
        if log.is_file() and log.read_text().count("\n") >= step:
            time.sleep(jitter)
            proc.kill()
            break
        time.sleep(0.002)
    proc.wait(timeout=300)
    return proc.returncode


@pytest.mark.parametrize("component", ["autoencoder", "transformer"])
def test_kill_9_at_random_moments_then_resume_equals_an_uninterrupted_run(component, tmp_path, ae_run):
    cfg = config(component)
    cfg.checkpoint_every = 2
    args = {"component": component, "cfg": cfg.to_dict(), "steps": 14,
            "ae": str(ae_run) if component == "transformer" else None}
    train(component, cfg, tmp_path / "straight", max_steps=14, autoencoder=args["ae"], progress=False)
    run, rng, kills = tmp_path / "killed", random.Random(component), 0
    for step in sorted(rng.sample(range(1, 13), 3)):
        resume = (run / "model" / "train_state").is_dir()
        code = killed_at_step({**args, "out": str(run), "resume": resume}, run, step, rng.uniform(0, 0.03))
        assert code in (0, -9)
        kills += code == -9
    r = child(**args, out=str(run), resume=(run / "model" / "train_state").is_dir())
    assert r.returncode == 0 and kills >= 2, r.stderr
    assert_same_state(tmp_path / "straight", run)
    steps = logged_steps(run)
    assert steps == list(range(1, 15))  # every step logged once
    assert leftovers(run) == []


@pytest.mark.parametrize("fault, exchange", [("save", True), ("written", True), ("switched", True),
                                             ("aside", False), ("switched", False)])
def test_kill_9_at_every_step_of_a_checkpoint_write(fault, exchange, tmp_path):
    cfg = config("autoencoder")
    cfg.checkpoint_every = 5
    run = tmp_path / "run"
    # at the second checkpoint (step 10), the first one being there: "save" counts weights files (the
    # 4th is the second checkpoint's state), "aside" only happens when there is a folder to replace
    n = {"save": 4, "aside": 1}.get(fault, 2)
    r = child(component="autoencoder", cfg=cfg.to_dict(), steps=10, out=str(run), resume=False,
              fault=[fault, n], exchange=exchange)
    assert r.returncode == -9, r.stderr
    assert leftovers(run)  # what the kill left: a half or whole new copy, or the old one set aside
    if exchange:  # one step: model/ is always a whole checkpoint, old or new
        assert json.loads((run / "model" / "train_state" / "state.json").read_text())["step"] in (5, 10)
    with pytest.raises(InputError, match="--resume"):  # a plain re-run refuses to start over at step 0
        train("autoencoder", cfg, run, max_steps=10, progress=False)
    assert leftovers(run) == []  # tidied by the run that took the lock, before anything else
    train("autoencoder", None, run, max_steps=10, resume=True, progress=False)
    train("autoencoder", cfg, tmp_path / "straight", max_steps=10, progress=False)
    assert_same_state(tmp_path / "straight", run)
    load_autoencoder(run)


def test_a_second_training_into_a_locked_run_is_refused_with_the_holders_pid(tmp_path):
    run = tmp_path / "run"
    train("autoencoder", config("autoencoder"), run, max_steps=3, progress=False)
    before = (run / "log.jsonl").read_bytes()
    with lock_run(run):  # another process training there
        r = subprocess.run([sys.executable, "-m", "kinema", "train", "autoencoder", "--out", str(run), "--resume",
                            "--max-steps", "6"], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1 and f"pid {os.getpid()}" in r.stderr
    assert (run / "log.jsonl").read_bytes() == before
    # the lock dies with its process: a killed holder leaves none behind
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from kinema.checkpoint import lock_run\n"
                               f"with lock_run({str(run)!r}):\n print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(WriteError, match=f"pid {holder.pid}"):
        train("autoencoder", None, run, max_steps=6, resume=True, progress=False)
    holder.kill()
    holder.wait()
    assert train("autoencoder", None, run, max_steps=6, resume=True, progress=False)["step"] == 6


def test_a_torn_last_log_line_is_skipped_with_a_warning(tmp_path):
    run = tmp_path / "run"
    train("autoencoder", config("autoencoder"), run, max_steps=4, progress=False)
    with open(run / "log.jsonl", "a") as f:
        f.write('{"step": 5, "lo')  # a kill in the middle of a write
    with pytest.warns(UserWarning, match="unreadable"):
        train("autoencoder", None, run, max_steps=6, resume=True, progress=False)
    assert logged_steps(run) == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("damage, needle", [
    (lambda meta, t: meta.pop("step"), "lacks step"),
    (lambda meta, t: t.pop("rng.torch"), "lacks rng.torch"),
    (lambda meta, t: t.update({k: torch.zeros(3) for k in t if k.startswith("model.")}), "do not fit"),
    (lambda meta, t: meta.update(step="ten"), "not a count"),
])
def test_a_damaged_training_state_is_a_clear_error(tmp_path, capsys, damage, needle, monkeypatch):
    from safetensors.torch import save_file
    run = tmp_path / "run"
    train("autoencoder", config("autoencoder"), run, max_steps=2, progress=False)
    folder = run / "model" / "train_state"
    meta, tensors = json.loads((folder / "state.json").read_text()), state(run)
    damage(meta, tensors)
    (folder / "state.json").write_text(json.dumps(meta))
    save_file(tensors, str(folder / "state.safetensors"))
    monkeypatch.setenv("KINEMA_NO_VERIFY", "1")  # edited by hand: get past the checksum to the contents
    code = main(["train", "autoencoder", "--out", str(run), "--resume", "--max-steps", "4"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and needle in err, err
    monkeypatch.delenv("KINEMA_NO_VERIFY")
    code = main(["train", "autoencoder", "--out", str(run), "--resume", "--max-steps", "4"])
    tensors_changed = needle in ("lacks rng.torch", "do not fit")  # the weights file was rewritten
    assert code == 2 and ("checksum mismatch" if tensors_changed else needle) in capsys.readouterr().err


def test_a_full_disk_during_a_checkpoint_keeps_the_last_one(tmp_path, monkeypatch):
    import kinema.checkpoint as checkpoint
    from safetensors import SafetensorError
    cfg = config("autoencoder")
    cfg.checkpoint_every = 3
    calls, save = [0], checkpoint.save_file

    def full_disk(*a, **k):
        calls[0] += 1
        if calls[0] > 2:  # the second checkpoint
            raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
        return save(*a, **k)

    monkeypatch.setattr(checkpoint, "save_file", full_disk)
    with pytest.raises(WriteError, match="No space left.*last checkpoint \\(step 3\\) is kept"):
        train("autoencoder", cfg, tmp_path / "run", max_steps=6, progress=False)
    monkeypatch.undo()
    assert leftovers(tmp_path / "run") == []
    assert json.loads((tmp_path / "run/model/train_state/state.json").read_text())["step"] == 3
    assert train("autoencoder", None, tmp_path / "run", max_steps=6, resume=True, progress=False)["step"] == 6


def test_a_real_small_filesystem_filling_up(tmp_path, capsys):
    """A 3 MB tmpfs (where this machine lets us mount one, as root)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here")
    try:
        code = main(["train", "autoencoder", "--preset", "tiny", "--out", str(mnt / "run"), "--max-steps", "10",
                     "--set", "checkpoint_every=5", "--set", "model.base_channels=32", "--json"])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("error: ") and "No space left" in err and err.count("\n") == 1
        assert leftovers(mnt / "run") == []
    finally:
        subprocess.run(["umount", str(mnt)])


@pytest.mark.parametrize("setting", ["batch_size=0", "log_every=0", "checkpoint_every=0", "lr=nan", "lr=inf",
                                     "data_seed=-1", "model.patch=3", "grad_clip=-1", "ema_decay=2",
                                     "compile=maybe", "checkpoint_minutes=nan", "frames=16", "crop=12",
                                     "condition_masks.image=-1", "condition_masks.video=1", "model.dim=8192",
                                     "betas=0.9", "warmup_steps=1.5", "sample_steps=0", "max_steps=0"])
def test_bad_training_settings_are_refused_before_anything_is_written(setting, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "transformer", "--preset", "tiny", "--autoencoder", "x", "--out", str(out),
                 "--set", setting])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()
    name = setting.split("=")[0].split(".")[-1]
    assert name in err or "shape" in err or "parameters" in err, err


def test_train_out_must_be_a_usable_folder(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    code = main(["train", "autoencoder", "--preset", "tiny", "--out", str(tmp_path / "file"), "--max-steps", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "not a folder" in err and (tmp_path / "file").read_text() == "x"


def test_a_fresh_run_that_fails_before_its_first_checkpoint_leaves_no_folder(tmp_path, capsys):
    code = main(["train", "transformer", "--preset", "tiny", "--out", str(tmp_path / "run"),
                 "--autoencoder", str(tmp_path / "missing")])
    assert code == 2 and capsys.readouterr().err.startswith("error: ")
    assert not (tmp_path / "run").exists()


def test_a_training_batch_over_the_pixel_limit_is_refused_when_parsed(capsys, tmp_path):
    code = main(["train", "autoencoder", "--preset", "tiny", "--out", str(tmp_path / "r"), "--set", "batch_size=4096",
                 "--set", "frames=9"])
    err = capsys.readouterr().err
    assert code == 2 and "over the limit" in err and "batch_size" in err and not (tmp_path / "r").exists()
