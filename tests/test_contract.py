"""The error contract of every command (DESIGN.md, issue 18): bad input gives exit code 2 and one
line `error: ...` on stderr, no traceback, leaves nothing behind, and never touches an output
that was already there. Each case is one test id; all of them fail before any model is loaded
or anything is generated, so the file runs in seconds."""

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from kinema.cli import main
from kinema.data.synthetic import SyntheticClips
from kinema.pipeline import DEFAULT_MODEL
from kinema.video import Video

BIG = "18446744073709551616"  # 2**64
FAST = 10.0  # seconds: a request over a resource limit is refused before anything is allocated
PROMPT = 20.0  # seconds: any bad request is refused before a model is loaded (~5 s) or anything generated

# id -> argv; "{w}" is the test's folder, which holds clip.mp4 (a good video), still.png,
# corrupt.mp4 (random bytes), empty.mp4 (0 bytes), fifo (a named pipe), dir/ and dir.mp4/ (empty
# folders), afile (a regular file, so afile/x has a file for a folder), full/ (a folder with a
# file in it), and the outputs that already exist: out.mp4, out.png, out.json.
OUT = ["--out", "{w}/out.mp4"]
CASES = {
    # info
    "info-unknown-flag": ["info", "--frobnicate"],
    "no-such-command": ["frobnicate"],
    # generate: numbers
    "generate-seed-2**64": ["generate", "x", "--seed", BIG, *OUT],
    "generate-seed-negative": ["generate", "x", "--seed", "-1", *OUT],
    "generate-seed-float": ["generate", "x", "--seed", "1.5", *OUT],
    "generate-frames-nan": ["generate", "x", "--frames", "nan", *OUT],
    "generate-frames-not-4k+1": ["generate", "x", "--frames", "16", *OUT],
    "generate-frames-huge": ["generate", "x", "--frames", "4093", *OUT],
    "generate-frames-negative": ["generate", "x", "--frames", "-3", *OUT],
    "generate-height-huge": ["generate", "x", "--height", "4096", "--width", "4096", *OUT],
    "generate-height-over-cap": ["generate", "x", "--height", "4112", *OUT],
    "generate-height-not-multiple": ["generate", "x", "--height", "70", *OUT],
    "generate-height-zero": ["generate", "x", "--height", "0", *OUT],
    "generate-width-float": ["generate", "x", "--width", "64.0", *OUT],
    "generate-tokens-over-limit": ["generate", "x", "--frames", "33", "--height", "512", "--width", "512", *OUT],
    "generate-fps-nan": ["generate", "x", "--fps", "nan", *OUT],
    "generate-fps-inf": ["generate", "x", "--fps", "inf", *OUT],
    "generate-fps-zero": ["generate", "x", "--fps", "0", *OUT],
    "generate-fps-tiny": ["generate", "x", "--fps", "1e-300", *OUT],
    "generate-gif-fps-too-high": ["generate", "x", "--fps", "60", "--out", "{w}/out.gif"],
    "generate-steps-zero": ["generate", "x", "--steps", "0", *OUT],
    "generate-steps-huge": ["generate", "x", "--steps", "1001", *OUT],
    "generate-guidance-nan": ["generate", "x", "--guidance", "nan", *OUT],
    "generate-guidance-inf": ["generate", "x", "--guidance", "inf", *OUT],
    "generate-guidance-negative": ["generate", "x", "--guidance", "-1", *OUT],
    "generate-interval-reversed": ["generate", "x", "--guidance-interval", "0.9,0.1", *OUT],
    "generate-interval-nan": ["generate", "x", "--guidance-interval", "nan,1", *OUT],
    "generate-interval-words": ["generate", "x", "--guidance-interval", "half", *OUT],
    "generate-seconds-nan": ["generate", "x", "--seconds", "nan", *OUT],
    "generate-seconds-zero": ["generate", "x", "--seconds", "0", *OUT],
    "generate-seconds-huge": ["generate", "x", "--seconds", "601", *OUT],
    "generate-seconds-too-many-pixels": ["generate", "x", "--seconds", "600", "--fps", "240", "--height", "256",
                                         "--width", "256", *OUT],
    "generate-long-window-too-short": ["generate", "x", "--frames", "5", "--seconds", "3", *OUT],
    # generate: text
    "generate-prompt-not-utf8": ["generate", "\udcff", *OUT],
    "generate-prompt-too-long": ["generate", "x" * 10_001, *OUT],
    # generate: outputs
    "generate-out-unknown-suffix": ["generate", "x", "--seconds", "30", "--out", "{w}/x.xyz"],
    "generate-out-dev-null": ["generate", "x", "--out", "/dev/null"],
    "generate-out-fifo": ["generate", "x", "--out", "{w}/fifo"],
    "generate-out-folder": ["generate", "x", "--out", "{w}/dir.mp4"],
    "generate-out-full-folder": ["generate", "x", "--out", "{w}/full"],
    "generate-out-missing-folder": ["generate", "x", "--out", "{w}/missing/out.mp4"],
    "generate-out-parent-is-a-file": ["generate", "x", "--out", "{w}/afile/out.mp4"],
    "generate-sheet-not-png": ["generate", "x", *OUT, "--sheet", "{w}/sheet.jpg"],
    "generate-sheet-fifo": ["generate", "x", *OUT, "--sheet", "{w}/fifo.png"],
    # generate: inputs
    "generate-image-missing": ["generate", "x", "--image", "{w}/missing.png", *OUT],
    "generate-image-fifo": ["generate", "x", "--image", "{w}/fifo", *OUT],
    "generate-image-corrupt": ["generate", "x", "--image", "{w}/corrupt.mp4", *OUT],
    "generate-image-empty-file": ["generate", "x", "--image", "{w}/empty.mp4", *OUT],
    "generate-image-empty-folder": ["generate", "x", "--image", "{w}/dir", *OUT],
    "generate-keyframe-malformed": ["generate", "x", "--keyframe", "4-b.png", *OUT],
    "generate-keyframe-superscript": ["generate", "x", "--keyframe", "\u00b2:{w}/still.png", *OUT],
    "generate-keyframe-out-of-range": ["generate", "x", "--keyframe", "99:{w}/still.png", *OUT],
    "generate-model-missing": ["generate", "x", "--model", "{w}/missing", *OUT],
    "generate-model-empty-folder": ["generate", "x", "--model", "{w}/dir", *OUT],
    # extend
    "extend-video-missing": ["extend", "{w}/missing.mp4", "--seconds", "2", *OUT],
    "extend-video-fifo": ["extend", "{w}/fifo", "--seconds", "2", *OUT],
    "extend-video-corrupt": ["extend", "{w}/corrupt.mp4", "--seconds", "2", *OUT],
    "extend-seconds-inf": ["extend", "{w}/clip.mp4", "--seconds", "inf", *OUT],
    "extend-seconds-negative": ["extend", "{w}/clip.mp4", "--seconds", "-1", *OUT],
    "extend-context-zero": ["extend", "{w}/clip.mp4", "--seconds", "2", "--context", "0", *OUT],
    "extend-context-whole-window": ["extend", "{w}/clip.mp4", "--seconds", "2", "--context", "5", *OUT],
    "extend-window-one-frame": ["extend", "{w}/clip.mp4", "--seconds", "2", "--frames", "1", *OUT],
    "extend-frames-huge": ["extend", "{w}/clip.mp4", "--seconds", "2", "--frames", "4093", *OUT],
    "extend-prompt-not-utf8": ["extend", "{w}/clip.mp4", "--seconds", "2", "--prompt", "a\udcffb", *OUT],
    "extend-out-dev-null": ["extend", "{w}/clip.mp4", "--seconds", "2", "--out", "/dev/null"],
    # interpolate
    "interpolate-first-missing": ["interpolate", "{w}/missing.png", "{w}/still.png", *OUT],
    "interpolate-last-fifo": ["interpolate", "{w}/still.png", "{w}/fifo", *OUT],
    "interpolate-frames-huge": ["interpolate", "{w}/still.png", "{w}/still.png", "--frames", "4093", *OUT],
    "interpolate-out-unknown-suffix": ["interpolate", "{w}/still.png", "{w}/still.png", "--out", "{w}/x.avi"],
    # edit
    "edit-video-corrupt": ["edit", "{w}/corrupt.mp4", "--prompt", "x", *OUT],
    "edit-strength-nan": ["edit", "{w}/clip.mp4", "--prompt", "x", "--strength", "nan", *OUT],
    "edit-strength-over-one": ["edit", "{w}/clip.mp4", "--prompt", "x", "--strength", "2", *OUT],
    "edit-mask-fifo": ["edit", "{w}/clip.mp4", "--prompt", "x", "--mask", "{w}/fifo", *OUT],
    "edit-seed-2**64": ["edit", "{w}/clip.mp4", "--prompt", "x", "--seed", BIG, *OUT],
    "edit-out-parent-is-a-file": ["edit", "{w}/clip.mp4", "--prompt", "x", "--out", "{w}/afile/x.mp4"],
    # train (argparse only: the run's own settings are tests/test_train.py's)
    "train-unknown-component": ["train", "everything", "--preset", "tiny", "--out", "{w}/run"],
    "train-max-steps-negative": ["train", "transformer", "--preset", "tiny", "--out", "{w}/run", "--max-steps", "-1"],
    "train-max-minutes-nan": ["train", "transformer", "--preset", "tiny", "--out", "{w}/run", "--max-minutes", "nan"],
    # export
    "export-steps-zero": ["export", str(DEFAULT_MODEL), "--out", "{w}/copy", "--steps", "0"],
    "export-guidance-nan": ["export", str(DEFAULT_MODEL), "--out", "{w}/copy", "--guidance", "nan"],
    "export-interval-reversed": ["export", str(DEFAULT_MODEL), "--out", "{w}/copy", "--guidance-interval", "1,0"],
    "export-out-not-empty": ["export", str(DEFAULT_MODEL), "--out", "{w}/full"],
    "export-out-is-a-file": ["export", str(DEFAULT_MODEL), "--out", "{w}/afile"],
    "export-out-parent-is-a-file": ["export", str(DEFAULT_MODEL), "--out", "{w}/afile/copy"],
    "export-model-missing": ["export", "{w}/missing", "--out", "{w}/copy"],
    # classify
    "classify-missing": ["classify", "{w}/missing.mp4"],
    "classify-fifo": ["classify", "{w}/fifo"],
    "classify-dev-null": ["classify", "/dev/null"],
    "classify-corrupt": ["classify", "{w}/corrupt.mp4"],
    "classify-empty-file": ["classify", "{w}/empty.mp4"],
    "classify-empty-folder": ["classify", "{w}/dir"],
    "classify-model-missing": ["classify", "{w}/clip.mp4", "--model", "{w}/missing"],
    # eval
    "eval-num-one": ["eval", "--num", "1"],
    "eval-num-huge": ["eval", "--num", "5000"],
    "eval-num-nan": ["eval", "--num", "nan"],
    "eval-seed-negative": ["eval", "--seed", "-1"],
    "eval-steps-zero": ["eval", "--steps", "0"],
    "eval-guidance-nan": ["eval", "--guidance", "nan"],
    "eval-json-dev-null": ["eval", "--json", "/dev/null"],
    "eval-json-fifo": ["eval", "--json", "{w}/fifo"],
    "eval-json-folder": ["eval", "--json", "{w}/dir"],
    "eval-json-parent-is-a-file": ["eval", "--json", "{w}/afile/x.json"],
    "eval-report-is-a-file": ["eval", "--json", "{w}/out.json", "--report", "{w}/afile"],
    "eval-report-parent-is-a-file": ["eval", "--report", "{w}/afile/report"],
    # dataset preview
    "preview-seed-negative": ["dataset", "preview", "--out", "{w}/out.png", "--seed", "-1"],
    "preview-seed-2**64": ["dataset", "preview", "--out", "{w}/out.png", "--seed", BIG],
    "preview-start-negative": ["dataset", "preview", "--out", "{w}/out.png", "--start", "-1"],
    "preview-huge-size": ["dataset", "preview", "--out", "{w}/out.png", "--height", "4096", "--width", "4096"],
    "preview-over-pixel-limit": ["dataset", "preview", "--out", "{w}/out.mp4", "--num", "64", "--height", "256",
                                 "--width", "256"],
    "preview-num-huge": ["dataset", "preview", "--out", "{w}/out.png", "--num", "65"],
    "preview-frames-huge": ["dataset", "preview", "--out", "{w}/out.png", "--frames", "4093"],
    "preview-fps-nan": ["dataset", "preview", "--out", "{w}/out.png", "--fps", "nan"],
    "preview-out-dev-null": ["dataset", "preview", "--out", "/dev/null"],
    "preview-out-unknown-suffix": ["dataset", "preview", "--out", "{w}/out.xyz"],
    "preview-out-parent-is-a-file": ["dataset", "preview", "--out", "{w}/afile/p.png"],
    # dataset export
    "export-clips-seed-negative": ["dataset", "export", "--num", "2", "--out", "{w}/clips", "--seed", "-1"],
    "export-clips-start-negative": ["dataset", "export", "--num", "2", "--out", "{w}/clips", "--start", "-1"],
    "export-clips-num-zero": ["dataset", "export", "--num", "0", "--out", "{w}/clips"],
    "export-clips-huge-clip": ["dataset", "export", "--num", "1", "--out", "{w}/clips", "--height", "4096",
                               "--width", "4096"],
    "export-clips-frames-huge": ["dataset", "export", "--num", "1", "--out", "{w}/clips", "--frames", "1025"],
    "export-clips-gif-fps": ["dataset", "export", "--num", "1", "--out", "{w}/clips", "--format", "gif",
                             "--fps", "60"],
    "export-clips-out-is-a-file": ["dataset", "export", "--num", "1", "--out", "{w}/afile"],
    "export-clips-out-parent-is-a-file": ["dataset", "export", "--num", "1", "--out", "{w}/afile/clips"],
}
LIMITS = {"generate-height-huge", "generate-frames-huge", "generate-tokens-over-limit",
          "generate-seconds-too-many-pixels", "preview-huge-size", "preview-over-pixel-limit",
          "export-clips-huge-clip", "extend-frames-huge", "interpolate-frames-huge"}


@pytest.fixture(scope="module")
def clip_bytes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip")
    SyntheticClips("train", frames=9, height=32, width=32)[0].video.save(folder / "clip.mp4")
    Video(np.full((32, 32, 3), 200, np.uint8)).save(folder / "still.png")
    return (folder / "clip.mp4").read_bytes(), (folder / "still.png").read_bytes()


@pytest.fixture
def work(tmp_path, monkeypatch, clip_bytes):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "clip.mp4").write_bytes(clip_bytes[0])
    (tmp_path / "still.png").write_bytes(clip_bytes[1])
    (tmp_path / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(4096))
    (tmp_path / "empty.mp4").write_bytes(b"")
    os.mkfifo(tmp_path / "fifo")
    os.mkfifo(tmp_path / "fifo.png")
    for name in ("dir", "dir.mp4", "full"):
        (tmp_path / name).mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    (tmp_path / "afile").write_text("a file")
    for name in ("out.mp4", "out.png", "out.json"):
        (tmp_path / name).write_bytes(b"a previous output " + name.encode())
    past = time.time() - 3600  # so that a rewrite would show in the mtime
    for p in tmp_path.rglob("*"):
        os.utime(p, (past, past), follow_symlinks=False)
    return tmp_path


def snapshot(folder):
    """Every path under `folder` with its kind, size, mtime and (for files) bytes."""
    out = {}
    for p in sorted(folder.rglob("*")):
        st = p.lstat()
        out[str(p.relative_to(folder))] = (st.st_mode, st.st_size, st.st_mtime_ns,
                                           p.read_bytes() if p.is_file() and not p.is_symlink() else None)
    return out


class Worked(BaseException):
    """Raised where a bad request would start real work: it must have been refused before."""


@pytest.fixture
def no_work(monkeypatch):
    """Loading a generation model, or rendering a procedural clip, fails the test: a bad request
    is refused from the model's JSON and its flags alone, before any of that."""
    from kinema.data.synthetic import SyntheticClips
    from kinema.pipeline import Pipeline

    def work(*_, **__):
        raise Worked("a bad request reached real work (a model load or a rendered clip)")

    monkeypatch.setattr(Pipeline, "from_folder", classmethod(work))
    monkeypatch.setattr(SyntheticClips, "__getitem__", work)


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_error_line_and_exit_2(work, capsys, case, no_work):
    argv = [a.replace("{w}", str(work)) for a in CASES[case]]
    before = snapshot(work)
    t0 = time.perf_counter()
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own errors exit from inside the parser
        code = e.code
    seconds = time.perf_counter() - t0
    out, err = capsys.readouterr()
    assert code == 2, (argv, err)
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err + out
    assert snapshot(work) == before  # nothing left behind, nothing touched
    # nothing slow happened (no_work): a generous bound that only a hang or a huge allocation misses
    limit = FAST if case in LIMITS else PROMPT
    assert seconds < limit, f"{case} took {seconds:.2f} s: it must be refused before any work"


def test_outputs_in_a_read_only_folder_are_refused_before_any_work(work, capsys, monkeypatch):
    (work / "ro").mkdir()
    (work / "ro").chmod(0o555)
    if os.geteuid() == 0:  # root may write anywhere: answer access() as for anyone else
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, **kw: real(p, mode, **kw) and (
            not mode & os.W_OK or os.stat(p).st_mode & 0o222 != 0))
    try:
        for argv in (["generate", "x", "--out", "{w}/ro/x.mp4"], ["eval", "--json", "{w}/ro/eval.json"],
                     ["eval", "--report", "{w}/ro/report"], ["dataset", "preview", "--out", "{w}/ro/p.png"],
                     ["dataset", "export", "--num", "1", "--out", "{w}/ro/clips"]):
            assert main([a.replace("{w}", str(work)) for a in argv]) == 2, argv
            err = capsys.readouterr().err
            assert err.startswith("error: ") and err.count("\n") == 1 and "writ" in err, err
        assert list((work / "ro").iterdir()) == []
    finally:
        (work / "ro").chmod(0o755)


def test_a_non_utf8_argument_from_the_shell(tmp_path):
    """Raw bytes in argv (a terminal in another encoding): a prompt is refused with one line; a
    file name is fine, and printed back as the bytes it was given."""
    env = {**os.environ, "LC_ALL": "C.UTF-8"}
    bad = subprocess.run([sys.executable, "-m", "kinema", "generate", b"\xff", "--out", str(tmp_path / "x.mp4")],
                         capture_output=True, env=env)
    assert bad.returncode == 2 and bad.stderr.startswith(b"error: ") and bad.stderr.count(b"\n") == 1
    assert b"Traceback" not in bad.stderr and list(tmp_path.iterdir()) == []
    out = os.fsencode(tmp_path) + b"/\xff.png"
    ok = subprocess.run([sys.executable, "-m", "kinema", "dataset", "preview", "--num", "1", "--frames", "1",
                         "--height", "16", "--width", "16", "--out", out], capture_output=True, env=env)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == b"wrote " + out + b"\n" and os.path.isfile(out)


def test_out_of_memory_is_one_error_line(monkeypatch, capsys, tmp_path):
    """An allocation that fails (an environment condition) is `error: out of memory (...)`, exit 2."""
    import kinema.data.export

    def starved(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
                           "memory: you tried to allocate 140737488355328 bytes. Error code 12")

    monkeypatch.setattr(kinema.data.export, "preview", starved)
    assert main(["dataset", "preview", "--out", str(tmp_path / "p.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: out of memory (131072.0 GiB more") and err.count("\n") == 1
    monkeypatch.setattr(kinema.data.export, "preview", lambda *a, **k: np.empty(2**45))
    assert main(["dataset", "preview", "--out", str(tmp_path / "p.png")]) == 2
    assert capsys.readouterr().err.startswith("error: out of memory")

    def bug(*args, **kwargs):
        raise RuntimeError("a bug, not memory")

    monkeypatch.setattr(kinema.data.export, "preview", bug)
    with pytest.raises(RuntimeError, match="a bug"):  # anything else is a bug: a traceback
        main(["dataset", "preview", "--out", str(tmp_path / "p.png")])
