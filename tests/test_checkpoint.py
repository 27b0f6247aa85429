"""Checkpoint folders: atomic switches, checksums, and configs sized before anything is allocated."""

import json
import os
import time

import pytest
import torch

from kinema import atomic
from kinema.checkpoint import CHECKSUMS, load_component, lock_run, save_model
from kinema.errors import CheckpointError, WriteError
from kinema.models.autoencoder import AutoencoderConfig, VideoAutoencoder
from kinema.models.transformer import TransformerConfig, VideoTransformer
from kinema.pipeline import DEFAULT_MODEL, load_autoencoder


def _ae():
    cfg = AutoencoderConfig(latent_channels=4, base_channels=4)
    return VideoAutoencoder(cfg), cfg.to_dict()


@pytest.fixture
def model_dir(tmp_path):
    torch.manual_seed(0)
    return save_model(tmp_path / "model", {"autoencoder": _ae()}, {"note": "test"})


def _flip_last_byte(path):
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01  # inside the last tensor's data: still a well-formed safetensors file
    path.write_bytes(bytes(data))


def test_a_flipped_byte_in_the_weights_is_a_checksum_error_naming_the_file(model_dir, monkeypatch):
    load_autoencoder(model_dir)  # loads as written
    weights = model_dir / "autoencoder" / "model.safetensors"
    assert (model_dir / "autoencoder" / CHECKSUMS).read_text().endswith("  model.safetensors\n")
    _flip_last_byte(weights)
    with pytest.raises(CheckpointError, match="checksum mismatch") as e:
        load_autoencoder(model_dir)
    assert str(weights) in str(e.value) and "KINEMA_NO_VERIFY" in str(e.value)
    monkeypatch.setenv("KINEMA_NO_VERIFY", "1")  # a model edited by hand, on purpose
    assert load_autoencoder(model_dir) is not None


def test_the_shipped_models_carry_checksums_that_verify():
    for folder in (DEFAULT_MODEL / "autoencoder", DEFAULT_MODEL / "transformer", DEFAULT_MODEL.parent / "classifier"):
        sums = (folder / CHECKSUMS).read_text()
        assert "model.safetensors" in sums
    load_autoencoder(DEFAULT_MODEL)


def test_a_huge_config_is_refused_before_anything_is_allocated(tmp_path):
    folder = tmp_path / "transformer"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"dim": 8192, "depth": 64, "heads": 64, "_format": 1}))
    (folder / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError, match="limit"):
        load_component(folder, lambda c: VideoTransformer(TransformerConfig.from_dict(c)))
    assert time.perf_counter() - t0 < 5  # counted on the meta device: no 4 GB allocation


def test_weights_of_other_shapes_are_refused_before_loading(tmp_path, model_dir):
    cfg = json.loads((model_dir / "autoencoder" / "config.json").read_text())
    cfg["base_channels"] = 8  # the weights are of width 4
    (model_dir / "autoencoder" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="do not match config.json"):
        load_autoencoder(model_dir)


@pytest.mark.parametrize("can_exchange", [True, False])
def test_a_folder_is_replaced_whole_and_a_kill_mid_switch_is_recovered(tmp_path, monkeypatch, can_exchange):
    dest = tmp_path / "model"
    for version in ("one", "two"):
        with atomic.atomic_path(dest, folder=True, replace=True) as tmp:
            (tmp / "v").write_text(version)
    assert (dest / "v").read_text() == "two" and sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    if not can_exchange:  # a filesystem without RENAME_EXCHANGE: two renames
        monkeypatch.setattr(atomic, "exchange", lambda a, b: False)

    class Killed(BaseException):
        pass

    def kill_at(point):
        if point == ("aside" if not can_exchange else "switched"):
            raise Killed

    monkeypatch.setattr(atomic, "_fault", kill_at)
    monkeypatch.setattr(atomic, "discard", lambda p: None)  # a kill runs no clean-up
    with pytest.raises(Killed):
        with atomic.atomic_path(dest, folder=True, replace=True) as tmp:
            (tmp / "v").write_text("three")
    monkeypatch.undo()
    leftovers = [p for p in tmp_path.iterdir() if p.name != "model"]
    assert leftovers  # the old (or the new) copy beside it
    atomic.recover(dest)
    assert (dest / "v").read_text() == ("three" if can_exchange else "two")  # a complete folder, old or new
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_outputs_never_replace_devices_pipes_or_folders(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for path in (fifo, tmp_path, "/dev/null"):
        with pytest.raises(WriteError, match="not a regular file|a folder"):
            with atomic.atomic_path(path) as tmp:
                tmp.write_text("x")
    assert fifo.exists() and os.path.exists("/dev/null") and not os.path.isfile("/dev/null")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]  # no temporary file left


def test_a_run_folder_is_locked_with_the_holders_pid(tmp_path):
    with lock_run(tmp_path / "run"):
        with pytest.raises(WriteError, match=f"in use by another kinema process \\(pid {os.getpid()}\\)"):
            with lock_run(tmp_path / "run"):
                pass
    with lock_run(tmp_path / "run"):  # released when the holder is done
        pass
    (tmp_path / "file").write_text("x")
    with pytest.raises(WriteError, match="not a folder"):
        with lock_run(tmp_path / "file"):
            pass
