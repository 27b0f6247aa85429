"""`kinema eval` and `kinema classify` end to end on tiny trained models, and their bad inputs."""

import json
import shutil

import av
import numpy as np
import pytest

from kinema.cli import main
from kinema.config import preset
from kinema.data.synthetic import SyntheticClips
from kinema.errors import InputError, WriteError
from kinema.eval_suite import adherence, adherence_by_count, attribute_values, evaluate
from kinema.models.classifier import ATTRIBUTES, classify, load_classifier
from kinema.pipeline import load
from kinema.train import train
from kinema.video import Video


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    train("autoencoder", preset("autoencoder", "tiny"), root / "ae", max_steps=10, progress=False)
    t2v = preset("transformer", "tiny").override(["frames=5", "height=32", "width=32"])
    train("transformer", t2v, root / "t2v", max_steps=4, autoencoder=root / "ae", progress=False)
    train("classifier", preset("classifier", "tiny").override(["sample_every=10"]), root / "clf", max_steps=10,
          progress=False)
    return root


def test_classifier_training_reports_accuracy_on_both_held_out_splits(runs):
    acc = json.loads((runs / "clf" / "samples" / "step_000010.json").read_text())
    assert set(acc) == {"heldout", "compositions"}
    assert all(set(a) == set(ATTRIBUTES) and all(0 <= v <= 1 for v in a.values()) for a in acc.values())
    assert acc["heldout"] != acc["compositions"]  # two different sets of clips were read
    assert (runs / "clf" / "samples" / "step_000010.png").is_file()


def test_eval_writes_every_figure_and_a_report(runs, tmp_path, capsys):
    report, out = tmp_path / "report", tmp_path / "eval.json"
    code = main(["eval", "--model", str(runs / "t2v"), "--classifier", str(runs / "clf"), "--num", "4",
                 "--steps", "2", "--json", str(out), "--report", str(report), "--roundtrip"])
    assert code == 0, capsys.readouterr().err
    result = json.loads(out.read_text())
    for key in ("fvd", "fvd_std", "fvd_floor", "fvd_floor_std", "fd_frames", "fd_frames_floor", "adherence",
                "adherence_real", "temporal", "temporal_real", "num", "seed", "split", "model", "seconds"):
        assert key in result, key
    assert set(result["adherence"]) >= {"colors", "shapes", "motions", "camera"}
    assert set(result["temporal"]) >= {"flicker", "smoothness", "dynamic_degree", "subject_consistency"}
    assert result["num"] == 4
    # the round trip: the tiny autoencoder's own reconstructions, scored like generated clips
    pipe, real = load(runs / "t2v"), SyntheticClips("heldout", 0, 5, 32, 32, 8.0)[0].video
    [rt] = pipe.roundtrip([real])
    z = pipe.encode(real, 32, 32)
    assert np.array_equal(rt.frames, pipe._decode(z, 8.0)[0].frames)
    assert result["fvd_roundtrip"] > 0 and set(result["adherence_roundtrip"]) == set(result["adherence"])
    page = (report / "index.html").read_text()
    assert "fvd_floor" in page and (report / "generated.png").is_file() and (report / "real.png").is_file()


class CopyingModel:
    """A perfect 'model': for a caption of the split it returns that caption's real clip."""

    defaults = {"frames": 17, "height": 64, "width": 64, "fps": 8.0}

    def __init__(self, num):
        clips = SyntheticClips("heldout", 0, **{k: v for k, v in self.defaults.items()})
        self.by_caption = {clips[i].caption: clips[i].video for i in range(num)}

    def generate(self, captions, **_):
        return [self.by_caption[c] for c in captions]

    def roundtrip(self, videos, **_):  # a lossless autoencoder
        return list(videos)


def test_a_perfect_model_scores_the_floor_and_runs_are_deterministic(runs):
    clf = load_classifier(runs / "clf")
    result = evaluate(CopyingModel(6), num=6, classifier=clf, progress=False)
    assert result["fvd_floor"] > 0  # two different real sets: not zero
    # generated clips equal to the captions' own clips score exactly what real clips score
    assert result["fvd"] == result["fvd_floor"] and result["fd_frames"] == result["fd_frames_floor"]
    assert result["adherence"] == result["adherence_real"] and result["temporal"] == result["temporal_real"]
    by_count = result["adherence_by_count"]
    assert by_count == result["adherence_real_by_count"]
    clips = SyntheticClips("heldout", 0, 17, 64, 64, 8.0)
    truth = [attribute_values(clips[i].attributes) for i in range(6)]
    assert {n: a["clips"] for n, a in by_count.items()} == \
        {n: sum(t["count"] == n for t in truth) for n in {t["count"] for t in truth}}
    lossless = evaluate(CopyingModel(6), num=6, classifier=clf, roundtrip=True, progress=False)
    assert lossless["fvd_roundtrip"] == result["fvd_floor"]  # a lossless autoencoder's ceiling is the floor
    assert lossless["adherence_roundtrip"] == result["adherence_real"]
    again = evaluate(CopyingModel(6), num=6, classifier=clf, progress=False)
    assert {k: v for k, v in again.items() if k not in ("seconds", "_clips")} == \
        {k: v for k, v in result.items() if k not in ("seconds", "_clips")}


def test_adherence_by_count_splits_the_clips_by_their_number_of_objects():
    clips = SyntheticClips("heldout", 0, 5, 32, 32, 8.0)
    truth = [attribute_values(clips[i].attributes) for i in range(40)]
    read = [{k: {"value": v} for k, v in t.items()} for t in truth]  # a perfect reading...
    for r, t in zip(read, truth):
        if t["count"] != "1":  # ...except that every clip with more than one object loses one shape
            r["shapes"]["value"] = t["shapes"][1:]
    by_count = adherence_by_count(read, truth)
    assert {n for n in by_count} == {"1", "2", "3"}
    assert by_count["1"]["shapes"] == 1.0 and by_count["2"]["shapes"] == by_count["3"]["shapes"] == 0.0
    assert all(a["colors"] == 1.0 for a in by_count.values())
    total = sum(a["clips"] * a["shapes"] for a in by_count.values()) / len(truth)
    assert total == pytest.approx(adherence(read, truth)["shapes"], abs=1e-4)


def test_eval_bad_input(runs, tmp_path, capsys):
    for num in ("1", "5000"):
        with pytest.raises(SystemExit) as e:  # argparse's range check
            main(["eval", "--model", str(runs / "t2v"), "--classifier", str(runs / "clf"), "--num", num])
        code, err = e.value.code, capsys.readouterr().err
        assert code == 2 and "--num: must be a whole number between 2 and 2048" in err and err.count("\n") == 1
    no_t = tmp_path / "noT"
    shutil.copytree(runs / "t2v" / "model", no_t)
    shutil.rmtree(no_t / "transformer")
    code = main(["eval", "--model", str(no_t), "--classifier", str(runs / "clf"), "--num", "4"])
    assert code == 2 and "no transformer" in capsys.readouterr().err
    # what would fail at the end fails first: a missing I3D file, a report path that is a file
    (tmp_path / "file").write_text("x")
    for extra in (["--i3d", str(tmp_path / "missing.pt")], ["--report", str(tmp_path / "file")]):
        code = main(["eval", "--model", str(runs / "t2v"), "--classifier", str(runs / "clf"), "--num", "4", *extra])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err


def test_eval_outputs_and_seed_are_checked_before_the_evaluation(tmp_path, monkeypatch):
    """--json and --report are checked before anything runs, and nothing is created to check
    them; a device or FIFO there is refused, never replaced; the seed is range-checked and the
    per-clip seeds derived from it stay in range."""
    import os

    from kinema.eval_suite import _clip_seed, check_json_path, check_report_folder, write_json
    from kinema.limits import MAX_SEED
    assert check_json_path(tmp_path / "new" / "deeper" / "eval.json") and check_report_folder(tmp_path / "r")
    assert list(tmp_path.iterdir()) == []  # checking created nothing
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "file").write_text("x")
    (tmp_path / "report").mkdir()
    os.mkfifo(tmp_path / "report" / "index.html")
    for bad in ("/dev/null", tmp_path / "fifo", tmp_path / "report", tmp_path / "file" / "x.json"):
        with pytest.raises(WriteError):
            check_json_path(bad)
    with pytest.raises(WriteError, match="not a regular file"):
        write_json({"fvd": 1.0}, "/dev/null")
    for bad in (tmp_path / "file", tmp_path / "report", tmp_path / "file" / "r"):
        with pytest.raises(WriteError):
            check_report_folder(bad)
    for seed in (-1, 2**63, 2**64, 1.5, True):
        with pytest.raises(InputError, match="seed must be a whole number between 0 and"):
            evaluate(None, num=2, seed=seed, classifier=object())
    assert _clip_seed(3, 5) == 3 * 1_000_003 + 5  # ordinary seeds: as before
    assert 0 <= _clip_seed(MAX_SEED, 2047) <= MAX_SEED


def test_classify_reads_a_video_and_flags_what_it_does_not_know(runs, tmp_path, capsys):
    clf = load_classifier(runs / "clf")
    noise = Video(np.random.default_rng(0).integers(0, 256, (9, 40, 56, 3), dtype=np.uint8), 8.0)
    reading = classify(noise, clf, unsure=1.01)  # nothing is certain enough at this bar
    assert not reading["in_domain"] and set(reading["uncertain"]) == set(reading["attributes"])
    path = tmp_path / "clip.mp4"
    noise.save(path)
    assert main(["classify", str(path), "--model", str(runs / "clf"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["caption"] and "colors" in out["attributes"] and 0 <= out["attributes"]["camera"]["confidence"] <= 1
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00not a video")
    code = main(["classify", str(bad), "--model", str(runs / "clf")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
    code = main(["classify", str(path), "--model", str(tmp_path / "nowhere")])
    assert code == 2 and "no classifier" in capsys.readouterr().err
    empty = tmp_path / "empty.mp4"
    with av.open(str(empty), "w") as c:  # a container whose writer received no frames
        s = c.add_stream("libx264", rate=8)
        s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
        c.start_encoding()
    code = main(["classify", str(empty), "--model", str(runs / "clf")])
    assert code == 2 and "zero frames" in capsys.readouterr().err
