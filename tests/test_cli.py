"""The `kinema` command: outputs people look at, JSON for scripts, one-line errors with exit 2."""

import json
import subprocess
import sys

import numpy as np
import pytest

from kinema.cli import main
from kinema.errors import KinemaError
from kinema.video import Video
from kinema.viz import BACKGROUND

SMALL = ["--frames", "5", "--height", "32", "--width", "32"]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_info_json(capsys):
    code, out, _ = run(capsys, "info", "--json")
    info = json.loads(out)
    assert code == 0 and info["torch"].startswith("2.") and info["device"] in ("cpu", "cuda")
    assert isinstance(info["bf16"], bool) and info["threads"] >= 1


def test_preview_png_is_a_labelled_grid(tmp_path, capsys):
    out = tmp_path / "grid.png"
    code, stdout, _ = run(capsys, "dataset", "preview", "--out", str(out), "--num", "3", *SMALL, "--json")
    assert code == 0 and json.loads(stdout)["out"] == str(out)
    img = Video.read(out).frames[0]
    # 3 rows of 5 frames (upscaled 2x) with a caption band under each
    assert img.shape[1] >= 5 * 64 and img.shape[0] > 3 * 64 + 3 * 15
    band = img[4 + 64: 4 + 64 + 14, 8:200]  # the first caption
    assert (np.abs(band.astype(int) - BACKGROUND).sum(-1) > 200).sum() > 30  # light text drawn there


def test_preview_video_grid(tmp_path, capsys):
    out = tmp_path / "grid.mp4"
    code, _, _ = run(capsys, "dataset", "preview", "--out", str(out), "--num", "4", *SMALL)
    v = Video.read(out)
    assert code == 0 and v.num_frames == 5 and v.width > 4 * 64


def test_export_writes_clips_and_metadata(tmp_path, capsys):
    out = tmp_path / "export"
    code, stdout, _ = run(capsys, "dataset", "export", "--num", "3", "--out", str(out), "--split", "heldout",
                          "--start", "7", *SMALL, "--json")
    assert code == 0 and json.loads(stdout)["clips"] == 3
    rows = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert [r["index"] for r in rows] == [7, 8, 9]
    for r in rows:
        assert {"file", "caption", "objects", "camera", "background", "num_objects", "split"} <= r.keys()
        v = Video.read(out / r["file"])
        assert (v.num_frames, v.height, v.width) == (5, 32, 32) and r["split"] == "heldout"


@pytest.mark.parametrize("argv, needle", [
    (["dataset", "export", "--num", "0", "--out", "x"], "--num"),
    (["dataset", "export", "--num", "2", "--out", "x", "--frames", "16"], "13 or 17"),
    (["dataset", "preview", "--out", "p.png", "--height", "1", "--width", "1"], "between 8 and 4096"),
    (["dataset", "preview", "--out", "p.png", "--height", "100000", "--width", "100000"], "between 8 and 4096"),
    (["dataset", "preview", "--out", "missing/dir/p.png", *SMALL], "does not exist"),
    (["dataset", "preview", "--out", "p.avi", *SMALL], "unknown output format"),
    (["dataset", "preview", "--out", "p.png", "--frobnicate"], "unrecognized"),
    (["dataset", "preview", "--out", "p.png", "--split", "validation"], "invalid choice"),
    (["dataset", "export", "--num", "two", "--out", "x"], "expected a whole number"),
])
def test_errors_are_one_line_exit_2(tmp_path, monkeypatch, capsys, argv, needle):
    monkeypatch.chdir(tmp_path)
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own errors
        code = e.code
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and needle in err
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(KinemaError):
        main(["--debug", "dataset", "preview", "--out", str(tmp_path / "p.avi")])
    with pytest.raises(KinemaError):
        main(["dataset", "preview", "--out", str(tmp_path / "p.avi"), "--debug"])


def test_console_entry_points(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "kinema", "--version"], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.startswith("kinema ")
    bad = subprocess.run([sys.executable, "-m", "kinema", "dataset", "preview", "--out", str(tmp_path / "x.png"),
                          "--frames", "4"], capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and bad.stderr.startswith("error: ")


def test_help_explains_every_flag():
    import argparse

    from kinema.cli import build_parser

    def walk(p):
        yield p
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for child in action.choices.values():
                    yield from walk(child)

    parsers = list(walk(build_parser()))
    assert {p.prog for p in parsers} >= {"kinema generate", "kinema train", "kinema dataset export"}
    for p in parsers:
        for action in p._actions:
            if action.dest != "help" and not isinstance(action, argparse._SubParsersAction):
                assert action.help, f"{p.prog} {action.option_strings or action.dest} has no help text"


def test_no_command_lists_the_commands_and_is_one_error_line(capsys):
    code = main([])
    out, err = capsys.readouterr()
    assert code == 2 and "generate" in out and err.startswith("error: no command") and err.count("\n") == 1
