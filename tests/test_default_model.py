"""The model kinema ships (kinema/assets/default, docs/MODEL_CARD.md): it loads with no arguments,
generates the shapes it was trained on, deterministically, and follows a prompt's colour."""

from pathlib import Path

import numpy as np
import pytest

from kinema.checkpoint import read_index
from kinema.models.classifier import load_classifier, readings
from kinema.pipeline import DEFAULT_MODEL, load


@pytest.fixture(scope="module")
def pipe():
    return load()


def test_shipped_model_is_complete_and_small():
    index = read_index(DEFAULT_MODEL)
    assert set(index["components"]) == {"autoencoder", "transformer"}
    assert {"17x64x64", "17x48x80", "17x80x48", "33x64x64"} <= set(index["trained_shapes"])
    assets = DEFAULT_MODEL.parent
    size = sum(f.stat().st_size for f in assets.rglob("*") if f.is_file())
    assert size < 40 * 2 ** 20, f"kinema/assets is {size / 2 ** 20:.1f} MB"
    assert not (DEFAULT_MODEL / "train_state").exists()


def test_default_generation_is_deterministic_and_sized_as_asked(pipe):
    a = pipe.generate("a red circle moves left", seed=3, steps=4, progress=False)
    b = pipe.generate("a red circle moves left", seed=3, steps=4, progress=False)
    c = pipe.generate("a red circle moves left", seed=4, steps=4, progress=False)
    assert a.frames.shape == (17, 64, 64, 3) and a.fps == 8
    assert np.array_equal(a.frames, b.frames) and not np.array_equal(a.frames, c.frames)
    wide = pipe.generate("a blue square moves right", frames=33, height=48, width=80, steps=2, progress=False)
    assert wide.frames.shape == (33, 48, 80, 3)


def test_the_classifier_reads_the_prompted_colour(pipe):
    colours = ["red", "yellow", "green", "cyan", "blue", "magenta"]
    videos = pipe.generate([f"a large {c} square moves right" for c in colours], seed=0, progress=False)
    read = [r["colors"]["value"] for r in readings(load_classifier(), videos)]
    assert all(c in r for r, c in zip(read, colours)), list(zip(colours, read))  # the prompted colour is there
    # and alone in most clips (a second, unasked object is a known failure: the model card's counts)
    assert sum(r == [c] for r, c in zip(read, colours)) >= 4, list(zip(colours, read))


def test_the_shipped_model_is_what_load_and_the_cli_use_by_default(tmp_path, capsys):
    from kinema.cli import main
    out = tmp_path / "clip.mp4"
    assert main(["generate", "a green circle moves up", "--steps", "2", "--out", str(out),
                 "--sheet", str(tmp_path / "clip.png")]) == 0
    assert out.is_file() and Path(tmp_path / "clip.png").is_file()
