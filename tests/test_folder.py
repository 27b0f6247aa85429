"""Training on a folder of footage: the folder source (captions, buckets, scene cuts, windows,
broken files), `kinema dataset scan`, mixtures, and `kinema train --data` end to end with exact
resume, on a folder of mixed real-world files the tests make (tests/footage.py)."""

import json
import warnings

import numpy as np
import pytest
import torch

from footage import make_footage, scene
from kinema.cli import main
from kinema.config import preset
from kinema.data.folder import FolderSource, nearest_bucket, scene_cuts, window_starts
from kinema.data.source import Mixture, ProceduralSource, open_sources, parse_data
from kinema.data.synthetic import SyntheticClips
from kinema.errors import DatasetError, InputError
from kinema.train import train

SHAPES = [(17, 64, 64), (17, 48, 80), (17, 80, 48), (1, 64, 64), (1, 48, 80)]


@pytest.fixture(scope="module")
def footage(tmp_path_factory):
    root = tmp_path_factory.mktemp("footage")
    return root, make_footage(root)


@pytest.fixture(scope="module")
def source(footage):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        src = FolderSource(footage[0], fps=8.0, shapes=SHAPES, trigger="", progress=False)
    src.caught = [str(w.message) for w in caught]
    return src


# ------------------------------------------------------------------ scene cuts

def test_a_hard_cut_is_found_where_it_is():
    cut = np.concatenate([scene(4, 12, 64, 64), scene(5, 12, 64, 64, invert=True)])
    assert scene_cuts(cut) == [12]
    # the same two shots joined at another frame, at another size
    cut = np.concatenate([scene(6, 5, 48, 80), scene(7, 20, 48, 80, invert=True)])
    assert scene_cuts(cut) == [5]


def test_motion_and_camera_moves_are_not_cuts():
    clips = SyntheticClips("heldout", 0, 33, 64, 64, 8.0)
    moving = [c for c in (clips[i] for i in range(40)) if c.attributes["camera"] != "static"][:8]
    assert len(moving) >= 4  # pans and zooms over textured backgrounds
    for c in moving:
        assert scene_cuts(c.frames) == [], c.caption
    assert scene_cuts(clips[0].frames[:1]) == []


def test_cuts_in_natural_clips_are_found():
    pytest.importorskip("skimage")
    from kinema.data.natural import NaturalClips
    nat = NaturalClips(0)
    found = missed = false = 0
    for i in range(120):
        c = nat.clip((17, 64, 64), i)
        got = scene_cuts(c.frames)
        if c.attributes["cut"] is None:
            false += bool(got)
        else:
            found += c.attributes["cut"] in got
            missed += c.attributes["cut"] not in got
    assert found >= 2 * max(1, missed) and false <= 6, (found, missed, false)


def test_windows_head_uniform_sliding():
    assert window_starts(10, 17, "uniform") == []
    assert window_starts(40, 17, "head") == [0]
    assert window_starts(40, 17, "uniform") == [0, 23]  # two non-overlapping, spread to the ends
    assert window_starts(20, 17, "uniform") == [1]  # one, centred
    assert window_starts(40, 17, "sliding") == [0, 8, 16]
    assert window_starts(1, 1, "uniform") == [0]


def test_nearest_bucket_by_aspect():
    sizes = [(64, 64), (48, 80), (80, 48)]
    assert nearest_bucket(1080, 1920, sizes) == (48, 80)
    assert nearest_bucket(1920, 1080, sizes) == (80, 48)
    assert nearest_bucket(480, 500, sizes) == (64, 64)


# ------------------------------------------------------------------ the folder source

def test_scan_reads_every_good_file_and_lists_the_broken_ones(source, footage):
    _, expect = footage
    r = source.report
    assert {f for f, _ in r.skipped} == expect["broken"]
    assert len(r.files) == expect["readable"]
    assert all(reason and "Traceback" not in reason for _, reason in r.skipped)
    assert any("skipped 2 file(s)" in w for w in source.caught)
    assert any("have no caption" in w and "empty caption" in w for w in source.caught)


def test_buckets_follow_each_files_aspect(source):
    bucket = {f.rel: f.bucket for f in source.report.files}
    assert bucket["street.mp4"] == (48, 80)
    assert bucket["tall.webm"] == (80, 48)
    assert bucket["city/square.mkv"] == (64, 64)
    assert bucket["wide photo.jpg"] == (48, 80)
    for shape in SHAPES:
        for i in range(source.count(shape)):
            c = source.clip(shape, i)
            assert c.frames.shape == (*shape, 3) and c.fps == 8.0
    assert source.count((1, 64, 64)) == 1 and source.count((1, 48, 80)) == 1  # the two photos


def test_videos_are_resampled_to_the_training_fps(source):
    frames = {f.rel: f.frames for f in source.report.files}
    assert frames["street.mp4"] == 24  # 72 frames at 24 fps = 3 s
    assert frames["city/square.mkv"] == 24  # 90 at 30 fps = 3 s
    assert frames["tall.webm"] == 20  # 25 at 10 fps
    assert 15 <= frames["vfr.mp4"] <= 40  # variable rate: read, at about its average rate


def test_a_scene_cut_splits_a_file_and_no_window_crosses_it(source, footage):
    _, expect = footage
    entry = next(f for f in source.report.files if f.rel == expect["cut_file"])
    assert entry.shots == 2
    # both 12-frame shots are shorter than a 17-frame window: dropped, with the reason
    reasons = [r for f, r in source.report.dropped if f == expect["cut_file"]]
    assert len(reasons) == 2 and all("shorter than one 17-frame window" in r for r in reasons)
    k = source.report.files.index(entry)
    assert not [s for s in source.index[(17, 64, 64)] if s[0] == k]


def test_captions_from_txt_metadata_and_the_trigger(footage):
    root, expect = footage
    src = FolderSource(root, fps=8.0, shapes=SHAPES, trigger="sks", progress=False)
    by_file = {}
    for shape in SHAPES:
        for i in range(src.count(shape)):
            c = src.clip(shape, i)
            by_file[c.attributes["file"]] = c.caption
    assert by_file["street.mp4"] == "sks a busy street at dusk"
    assert by_file["city/square.mkv"] == "sks a square in the city"
    assert by_file["photo.png"] == "sks a still photograph"
    assert by_file["tall.webm"] == "sks"  # no caption: the trigger alone
    assert {f.rel for f in src.report.files if f.caption is not None} == expect["captioned"]


def test_clips_are_a_pure_function_of_the_folder_and_the_index(footage, source):
    root, _ = footage
    again = FolderSource(root, fps=8.0, shapes=SHAPES, progress=False, cache_bytes=1)  # decodes on demand
    assert again.identity() == source.identity()
    shape = (17, 64, 64)
    assert again.count(shape) == source.count(shape) > 0
    for i in range(source.count(shape)):
        assert np.array_equal(again.clip(shape, i).frames, source.clip(shape, i).frames)


def test_a_changed_file_changes_the_identity(tmp_path):
    make_footage(tmp_path)
    a = FolderSource(tmp_path, fps=8.0, shapes=SHAPES, progress=False).identity()
    (tmp_path / "street.txt").write_text("another caption")
    assert FolderSource(tmp_path, fps=8.0, shapes=SHAPES, progress=False).identity() != a


def test_an_empty_or_unusable_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="no videos or images"):
        FolderSource(tmp_path, fps=8.0, shapes=SHAPES, progress=False)
    (tmp_path / "bad.mp4").write_bytes(b"\x00" * 100)
    with pytest.raises(DatasetError, match="could not be read"):
        FolderSource(tmp_path, fps=8.0, shapes=SHAPES, progress=False)
    (tmp_path / "bad.mp4").unlink()
    from kinema.video import Video
    Video(scene(0, 1, 64, 64), 8.0).save(tmp_path / "still.png")
    with pytest.raises(DatasetError, match="no training shape has 1 frame"):
        FolderSource(tmp_path, fps=8.0, shapes=[(17, 64, 64)], progress=False)


# ------------------------------------------------------------------ mixtures

def test_data_specs_parse_and_mixtures_draw_by_weight(footage):
    root, _ = footage
    assert parse_data("procedural, natural:2") == [("procedural", 1.0), ("natural", 2.0)]
    with pytest.raises(InputError, match="weight"):
        parse_data("procedural:-1")
    mix = open_sources(f"{root}:3,procedural:1", seed=0, fps=8.0, shapes=[(17, 64, 64)], progress=False)
    picks = ["file" in mix.clip((17, 64, 64), p).attributes for p in range(200)]
    assert 0.65 < np.mean(picks) < 0.85  # 3 : 1
    again = open_sources(f"{root}:3,procedural:1", seed=0, fps=8.0, shapes=[(17, 64, 64)], progress=False)
    for p in (0, 7, 199):
        assert np.array_equal(mix.clip((17, 64, 64), p).frames, again.clip((17, 64, 64), p).frames)


def test_a_finite_source_alone_is_read_in_a_fresh_order_every_epoch(source):
    mix = Mixture([(source, 1.0)], seed=0)
    shape = (17, 64, 64)
    n = source.count(shape)
    def key(c):
        return c.attributes["file"], c.attributes["start"]
    epochs = [[key(mix.clip(shape, e * n + k)) for k in range(n)] for e in range(3)]
    assert all(len(set(e)) == n for e in epochs)  # every clip once an epoch
    assert sorted(epochs[0]) == sorted(epochs[1]) and len({tuple(e) for e in epochs}) > 1  # in a fresh order
    single = Mixture([(ProceduralSource(0), 1.0)])
    assert np.array_equal(single.clip(shape, 5).frames, SyntheticClips("train", 0, *shape, 8.0)[5].frames)


# ------------------------------------------------------------------ the CLI and training

def test_dataset_scan_reports_and_draws_a_sheet(footage, tmp_path, capsys):
    root, expect = footage
    sheet = tmp_path / "sheet.png"
    assert main(["dataset", "scan", str(root), "--shapes", ",".join("x".join(map(str, s)) for s in SHAPES),
                 "--trigger", "sks", "--sheet", str(sheet), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["files"] == expect["readable"] and report["images"] == 2
    assert {s["file"] for s in report["skipped"]} == expect["broken"]
    assert report["captions"] == {"found": 3, "missing": expect["readable"] - 3}
    assert report["scene_cuts"] >= 1 and report["windows"]["17x64x64"] > 0
    from PIL import Image
    img = np.asarray(Image.open(sheet))
    assert img.shape[0] > 100 and img.std() > 10  # clips drawn, not a blank page
    assert main(["dataset", "scan", str(root), "--shapes", "17x64x64"]) == 0
    out = capsys.readouterr().out
    assert "skipped 2 file(s)" in out and "truncated.mp4" in out and "noise.mov" in out


def test_dataset_scan_of_nothing_is_one_error_line(tmp_path, capsys):
    assert main(["dataset", "scan", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "no videos or images" in err
    assert main(["train", "autoencoder", "--preset", "tiny", "--data", str(tmp_path / "nope"),
                 "--out", str(tmp_path / "r")]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_train_autoencoder_on_a_folder_end_to_end(footage, tmp_path, capsys):
    small_footage = footage[0]
    out = tmp_path / "ae"
    assert main(["train", "autoencoder", "--preset", "tiny", "--data", f"{small_footage}:2", "--data", "procedural",
                 "--max-steps", "6", "--out", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["step"] == 6
    recipe = json.loads((out / "model" / "model_index.json").read_text())["recipe"]["config"]
    assert recipe["data"] == f"{small_footage}:2,procedural"


def test_train_transformer_on_a_folder_resumes_exactly(footage, tmp_path):
    small_footage = footage[0]
    ae = tmp_path / "ae"
    train("autoencoder", preset("autoencoder", "tiny"), ae, max_steps=2, progress=False)
    cfg = preset("transformer", "tiny")
    cfg.data, cfg.trigger, cfg.checkpoint_every, cfg.log_every = str(small_footage), "sks", 1000, 1
    cfg.shapes = "5x16x16,5x16x24"
    from test_resume import assert_same_state
    train("transformer", cfg, tmp_path / "straight", max_steps=6, autoencoder=ae, progress=False)
    train("transformer", cfg, tmp_path / "split", max_steps=3, autoencoder=ae, progress=False)
    summary = train("transformer", None, tmp_path / "split", max_steps=6, resume=True, autoencoder=ae, progress=False)
    assert summary["changed"] == {} and summary["step"] == 6
    assert_same_state(tmp_path / "straight", tmp_path / "split")


def test_the_classifier_refuses_unlabelled_footage(footage, tmp_path):
    small_footage = footage[0]
    cfg = preset("classifier", "tiny")
    cfg.data = str(small_footage)
    cfg.height = cfg.width = 16
    with pytest.raises(InputError, match="labelled"):
        train("classifier", cfg, tmp_path / "c", max_steps=1, progress=False)


def test_torchrun_ddp_trains_on_a_folder(footage, tmp_path):
    import subprocess
    import sys
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "kinema",
           "train", "autoencoder", "--preset", "tiny", "--data", str(footage[0]), "--out", str(tmp_path / "r"),
           "--max-steps", "3", "--max-minutes", "30", "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    reports = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(reports) == 1 and reports[0]["world_size"] == 2 and reports[0]["step"] == 3


def test_a_folders_latents_are_cached_on_disk_once_a_clip(footage, tmp_path):
    ae = tmp_path / "ae"
    train("autoencoder", preset("autoencoder", "tiny"), ae, max_steps=1, progress=False)
    cfg = preset("transformer", "tiny").override([f"data={footage[0]}"])
    summary = train("transformer", cfg, tmp_path / "t", max_steps=2, autoencoder=ae, progress=False,
                    cache=tmp_path / "cache")
    windows = FolderSource(footage[0], fps=8.0, shapes=[(5, 16, 16)], progress=False).count((5, 16, 16))
    assert summary["clips"] == summary["encoded"] == windows > 0
    assert len(list((tmp_path / "cache" / "latents").rglob("*.safetensors"))) == windows
    again = train("transformer", cfg, tmp_path / "t2", max_steps=1, autoencoder=ae, progress=False,
                  cache=tmp_path / "cache")
    assert again["encoded"] == 0 and again["clips"] == windows


def test_a_video_over_the_read_caps_gives_its_first_frames(tmp_path, monkeypatch):
    import kinema.video as video_module
    from kinema.errors import VideoReadError
    from kinema.video import read_video
    from footage import write
    write(scene(0, 40, 64, 64), tmp_path / "long.mp4", 8)
    whole = read_video(tmp_path / "long.mp4")
    monkeypatch.setattr(video_module, "MAX_DECODED_PIXELS", 25 * 64 * 64)  # 25 frames' worth of decoding
    with pytest.raises(VideoReadError, match="cap"):
        read_video(tmp_path / "long.mp4")
    head = read_video(tmp_path / "long.mp4", head=True)
    assert 20 <= head.num_frames <= 25
    np.testing.assert_array_equal(head.frames, whole.frames[:head.num_frames])  # its first frames, as they are
    with pytest.raises(VideoReadError, match="frames"):
        read_video(tmp_path / "long.mp4", max_frames=10)
    assert read_video(tmp_path / "long.mp4", max_frames=10, head=True).num_frames == 10
    src = FolderSource(tmp_path, fps=8.0, shapes=[(17, 64, 64)], progress=False)
    assert src.count((17, 64, 64)) == 1 and not src.report.skipped
