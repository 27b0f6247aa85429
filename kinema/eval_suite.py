"""`kinema eval`: generate clips from a split's captions and compare them with real clips.

    generated  = model(captions of real clips 0..N-1)
    real       = clips 0..N-1 of the split           (the captions' own clips: adherence truth)
    real_other = clips N..2N-1 of the split          (the reference set of every distance)
    roundtrip  = the autoencoder's reconstructions of `real` (with roundtrip=True)

`fvd` = FD(generated, real_other) and `fvd_floor` = FD(real, real_other): both compare a set
made from the captions of clips 0..N-1 with an independent real set, so a perfect model scores
the floor (up to noise). Comparing generated with `real` instead would pair clips that share
their attributes and let a perfect model score below the floor. `fvd_roundtrip` and
`adherence_roundtrip` score the autoencoder's reconstructions of the real clips the same way:
the best a perfect transformer could do through this autoencoder.

Every figure is computed on classifier features (kinema.models.classifier), so no download is
needed; `i3d` adds the standard FVD when the user has an I3D TorchScript file. See metrics.py
for the formulas and README for what the numbers mean at which N.
"""

from __future__ import annotations

import html
import json
import os
import time
from pathlib import Path

import numpy as np

from . import metrics
from .atomic import atomic_path
from .data.synthetic import SyntheticClips
from .errors import InputError, WriteError
from .models.classifier import ATTRIBUTES, classifier_features, load_classifier, readings
from .limits import MAX_EVAL_CLIPS
from .checks import check_seed
from .video import Video
from .viz import contact_sheet

MAX_NUM = MAX_EVAL_CLIPS
REPORT_FILES = ("index.html", "generated.png", "real.png")  # what write_report writes into its folder


def attribute_values(attrs: dict) -> dict:
    """The ground truth of a clip in the classifier's terms (sets as sorted lists)."""
    objs = attrs["objects"]
    return {"colors": sorted({o["color"] for o in objs}), "shapes": sorted({o["shape"] for o in objs}),
            "sizes": sorted({o["size"] for o in objs}), "motions": sorted({o["motion"] for o in objs}),
            "speeds": sorted({o["speed"] for o in objs if o["speed"]}), "camera": attrs["camera"],
            "count": str(attrs["num_objects"]), "background": attrs["background"]}


def adherence(read: list[dict], truth: list[dict]) -> dict:
    """Per attribute, the fraction of clips whose reading equals the truth (sets as a whole)."""
    out = {}
    for name, (kind, _) in ATTRIBUTES.items():
        hits = [(sorted(r[name]["value"]) if kind == "set" else r[name]["value"]) == t[name]
                for r, t in zip(read, truth)]
        out[name] = round(float(np.mean(hits)), 4)
    return out


def adherence_by_count(read: list[dict], truth: list[dict]) -> dict:
    """`adherence` within each group of clips with the same number of objects ("1", "2", "3"), with
    the group's size as "clips": set attributes get harder with every object (all must be right)."""
    groups = {}
    for r, t in zip(read, truth):
        groups.setdefault(t["count"], ([], []))
        groups[t["count"]][0].append(r)
        groups[t["count"]][1].append(t)
    return {n: {"clips": len(g[0]), **adherence(*g)} for n, g in sorted(groups.items())}


def check_num(num: int) -> int:
    if isinstance(num, bool) or not isinstance(num, int) or not 2 <= num <= MAX_NUM:
        raise InputError(f"--num must be a whole number between 2 and {MAX_NUM}, got {num!r}")
    return num


def _clip_seed(seed: int, j: int) -> int:
    """Clip j's noise seed: its own, so a clip does not depend on its batch (wrapped into the seed
    range; unchanged for ordinary seeds)."""
    return (seed * 1_000_003 + j) % 2**63


def evaluate(pipe, num: int = 256, split: str = "heldout", seed: int = 0, classifier=None, i3d=None,
             steps: int | None = None, guidance: float | None = None, guidance_interval: tuple | None = None,
             roundtrip: bool = False, batch: int = 16, progress: bool = True) -> dict:
    """All figures for `pipe` (a Pipeline, or None to score only real-vs-real) as one dict, and
    the clips (for the report) under the "_clips" key."""
    check_num(num)
    seed = check_seed(seed)
    timings, t0 = {}, time.perf_counter()
    classifier = classifier or load_classifier()
    d = pipe.defaults if pipe is not None else {"frames": 17, "height": 64, "width": 64, "fps": 8.0}
    clips = SyntheticClips(split, 0, d["frames"], d["height"], d["width"], d["fps"])
    real = [clips[i] for i in range(num)]
    other = [clips[i] for i in range(num, 2 * num)]
    timings["real_clips"] = time.perf_counter() - t0

    generated = []
    if pipe is not None:
        t = time.perf_counter()
        from tqdm.auto import tqdm
        for i in tqdm(range(0, num, batch), desc="generating", unit="batch", disable=not progress):
            caps = [c.caption for c in real[i: i + batch]]
            seeds = [_clip_seed(seed, j) for j in range(i, i + len(caps))]
            generated += pipe.generate(caps, steps=steps, guidance=guidance, guidance_interval=guidance_interval,
                                       seed=seeds, progress=False, watermark=False)  # the model itself
        timings["generate"] = time.perf_counter() - t

    sets = {"real": [c.video for c in real], "real_other": [c.video for c in other]}
    if generated:
        sets["generated"] = generated
    if roundtrip and pipe is not None:
        t_rt = time.perf_counter()
        sets["roundtrip"] = pipe.roundtrip(sets["real"], batch=batch)
        timings["roundtrip"] = time.perf_counter() - t_rt
    t = time.perf_counter()
    feats = {k: classifier_features(classifier, v) for k, v in sets.items()}  # (clip (N, D), frames (N, T, D))
    read = {k: readings(classifier, v) for k, v in sets.items()}
    timings["classifier"] = time.perf_counter() - t

    result = {"split": split, "num": num, "seed": seed}
    clip_f = {k: v[0] for k, v in feats.items()}
    frame_f = {k: v[1].reshape(-1, v[1].shape[-1]) for k, v in feats.items()}
    result["fvd_floor"] = round(metrics.features_fd(clip_f["real"], clip_f["real_other"]), 4)
    result["fvd_floor_std"] = round(metrics.bootstrap_fd(clip_f["real"], clip_f["real_other"]), 4)
    truth = [attribute_values(c.attributes) for c in real]
    result["adherence_real"] = adherence(read["real"], truth)
    result["adherence_real_by_count"] = adherence_by_count(read["real"], truth)
    t = time.perf_counter()
    result["temporal_real"] = metrics.temporal_report([v.frames for v in sets["real"]], list(feats["real"][1]))
    if generated:
        result["fvd"] = round(metrics.features_fd(clip_f["generated"], clip_f["real_other"]), 4)
        result["fvd_std"] = round(metrics.bootstrap_fd(clip_f["generated"], clip_f["real_other"]), 4)
        result["fd_frames"] = round(metrics.features_fd(frame_f["generated"], frame_f["real_other"]), 4)
        result["adherence"] = adherence(read["generated"], truth)
        result["adherence_by_count"] = adherence_by_count(read["generated"], truth)
        result["temporal"] = metrics.temporal_report([v.frames for v in generated], list(feats["generated"][1]))
    if "roundtrip" in sets:
        result["fvd_roundtrip"] = round(metrics.features_fd(clip_f["roundtrip"], clip_f["real_other"]), 4)
        result["adherence_roundtrip"] = adherence(read["roundtrip"], truth)
    result["fd_frames_floor"] = round(metrics.features_fd(frame_f["real"], frame_f["real_other"]), 4)
    timings["metrics"] = time.perf_counter() - t
    if i3d is not None:
        t = time.perf_counter()
        model = metrics.load_i3d(i3d) if isinstance(i3d, (str, Path)) else i3d  # a path, or a loaded module
        f = {k: metrics.i3d_features(model, [v.frames for v in vs]) for k, vs in sets.items()}
        result["i3d_fvd_floor"] = round(metrics.features_fd(f["real"], f["real_other"]), 4)
        if generated:
            result["i3d_fvd"] = round(metrics.features_fd(f["generated"], f["real_other"]), 4)
        timings["i3d"] = time.perf_counter() - t
    result["seconds"] = {k: round(v, 2) for k, v in timings.items()}
    result["_clips"] = {"captions": [c.caption for c in real], **sets}
    return result


def write_report(result: dict, folder: str | Path, show: int = 8) -> Path:
    """An HTML page with the metric table and side-by-side PNG grids of generated and real clips."""
    folder = writable_folder(check_report_folder(folder))
    clips = result["_clips"]
    n = min(show, len(clips["captions"]))
    images = []
    for name in ("generated", "real"):
        if name in clips:
            Video(contact_sheet(clips[name][:n], clips["captions"][:n])).save(folder / f"{name}.png")
            images.append(name)
    rows = []
    for key, value in result.items():
        if key.startswith("_"):
            continue
        if isinstance(value, dict):
            value = "; ".join(f"{k}: " + ", ".join(f"{a} {b}" for a, b in v.items()) if isinstance(v, dict)
                              else f"{k} {v}" for k, v in value.items())
        rows.append(f"<tr><td>{html.escape(key)}</td><td>{html.escape(str(value))}</td></tr>")
    figures = "".join(f'<figure><img src="{n}.png"><figcaption>{n}</figcaption></figure>' for n in images)
    page = (f"<!doctype html><meta charset='utf-8'><title>kinema eval</title>"
            f"<style>body{{font-family:sans-serif;margin:2em}}td{{padding:2px 12px;border-bottom:1px solid #ddd}}"
            f"figure{{display:inline-block;vertical-align:top;margin:0 1em}}</style>"
            f"<h1>kinema eval: {html.escape(str(result.get('model', '')))}</h1>"
            f"<table>{''.join(rows)}</table><div>{figures}</div>")
    with atomic_path(folder / "index.html") as tmp:
        tmp.write_text(page)
    return folder / "index.html"


def writable_folder(folder: Path) -> Path:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WriteError(f"cannot write to {folder}: {e.strerror or e}") from e
    return folder


def _can_make(path: Path, what: str) -> None:
    """`path` is absent (and the nearest folder above it that exists is writable) or a regular
    file in a writable folder: never a device, FIFO or folder, which a write would replace."""
    if path.exists() or path.is_symlink():
        if not path.is_file():
            raise WriteError(f"cannot write {what} {path}: it exists and is not a regular file "
                             f"(a folder, device or FIFO); kinema never replaces one")
    above = path.parent
    while not above.exists() and above != above.parent:
        above = above.parent
    if not above.is_dir():
        raise WriteError(f"cannot write {what} {path}: {above} is not a folder")
    if not os.access(above, os.W_OK | os.X_OK):
        raise WriteError(f"cannot write {what} {path}: folder {above} is not writable")


def check_json_path(path) -> Path:
    """Check before the evaluation that `eval --json PATH` can be written (nothing is created)."""
    path = Path(path)
    _can_make(path, "the JSON file")
    return path


def check_report_folder(folder) -> Path:
    """Check before the evaluation that `eval --report DIR` can be written: a folder (or nothing)
    whose report files, if there, are regular files (nothing is created)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise WriteError(f"cannot write the report into {folder}: it exists and is not a folder")
    if folder.is_dir():
        for name in REPORT_FILES:
            _can_make(folder / name, "the report file")
    else:
        _can_make(folder, "the report folder")
    return folder


def public(result: dict) -> dict:
    """The JSON-ready part of a result."""
    return {k: v for k, v in result.items() if not k.startswith("_")}


def write_json(result: dict, path: str | Path) -> Path:
    path = check_json_path(path)
    writable_folder(path.parent)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(public(result), indent=1))
    return path
