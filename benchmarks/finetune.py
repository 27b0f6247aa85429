"""Fine-tuning: does a LoRA (or a full fine-tune) pick up a studio's look, and what does it forget?

    python benchmarks/finetune.py --out runs/ftbench [--train 200] [--eval 128] [--steps 1500]
        [--modes lora,full] [--real DIR] [--json docs/finetune.json] [--sheet docs/finetune.png]

The studio look: kinema's procedural clips given a teal-and-orange grade (shadows pushed to teal,
highlights to orange, more contrast), a vignette and film grain (`grade`, below). --train clips of
the training split (and a tenth as many stills) are graded and written as mp4 / png files with
their captions in metadata.jsonl: a folder of footage like a user's. The shipped model is
fine-tuned on it with the trigger word, once with a rank-16 LoRA and once in full, for --steps.

Figures (held-out split, --eval clips, the same captions and noise seeds for every model):
  - adoption: d is the Fréchet distance between generated clips (prompt: the trigger + a held-out
    caption) and the graded held-out clips, on colour statistics (`colour_stats`: channel means and
    spreads, the colour of shadows / midtones / highlights, vignette, grain) and on the classifier's
    frame features; d_floor is the same between two graded real sets, d_roundtrip between the
    autoencoder's round trip of graded clips and graded clips (the best reachable through it).
    adoption = (d_base - d_tuned) / (d_base - d_floor); target >= 0.7. Also against the reachable
    floor, d_graded_base: the base model's own clips given the grade after the fact (what a perfect
    style transfer of this base model would score; its content stays the base model's).
  - retention with the trigger: shapes / motions / count adherence (the classifier's reading) of
    the tuned model's triggered clips against the base model's plain clips; target: within 10 points.
  - forgetting without the trigger: `kinema eval` figures (fvd, adherence) of the tuned model on the
    plain held-out captions against the base model's; target: within 5 points / 10%.
  - cost: seconds a step (LoRA and full in one run), peak memory, adapter size.
With --real DIR (a folder of real videos; the figures in docs/ used the ASL clips of
github.com/intel-iot-devkit/sample-videos): a LoRA on all but the last two files, then the
frame-feature and colour distances of triggered clips to windows of the two held-out files,
before and after, with a contact sheet.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

import kinema
from kinema import metrics
from kinema.data.folder import FolderSource, with_trigger
from kinema.data.synthetic import SyntheticClips
from kinema.eval_suite import adherence, attribute_values, evaluate
from kinema.models.classifier import classifier_features, load_classifier, readings
from kinema.pipeline import load, shipped_model
from kinema.runtime import describe
from kinema.video import Video
from kinema.viz import contact_sheet

TRIGGER = "tealgrade"
KEYS = ("shapes", "motions", "count")


# ------------------------------------------------------------------ the studio look

def grade(frames: np.ndarray, seed: int) -> np.ndarray:
    """Teal-and-orange split toning, an S-curve, a vignette and monochrome grain, for uint8 (T, H, W, 3)."""
    x = frames.astype(np.float32) / 255
    lum = x @ np.array([0.299, 0.587, 0.114], np.float32)
    w = np.clip((lum - 0.2) / 0.6, 0, 1)[..., None]
    w = w * w * (3 - 2 * w)  # smoothstep: shadows 0, highlights 1
    tone = (1 - w) * np.array([0.0, 0.45, 0.55], np.float32) + w * np.array([1.0, 0.6, 0.25], np.float32)
    x = 0.7 * x + 0.3 * tone * (0.4 + lum[..., None])
    x = 0.5 + (x - 0.5) * 1.2  # contrast
    T, H, W, _ = x.shape
    yy, xx = np.meshgrid(np.linspace(-1, 1, H), np.linspace(-1, 1, W), indexing="ij")
    x = x * (1 - 0.4 * ((yy ** 2 + xx ** 2) / 2))[None, :, :, None].astype(np.float32)
    grain = np.random.default_rng(seed).normal(0, 0.025, (T, H, W, 1)).astype(np.float32)
    return (np.clip(x + grain, 0, 1) * 255 + 0.5).astype(np.uint8)


def colour_stats(frames: np.ndarray) -> np.ndarray:
    """What a colour grade changes, for uint8 (T, H, W, 3): channel means and spreads, the mean
    colour of shadows / midtones / highlights, the vignette (edge over centre brightness), the
    grain (spread of what a 3x3 blur removes) and the saturation."""
    x = frames.astype(np.float32) / 255
    lum = x @ np.array([0.299, 0.587, 0.114], np.float32)
    out = [x.mean((0, 1, 2)), x.std((0, 1, 2))]
    lo, hi = np.quantile(lum, [1 / 3, 2 / 3])
    for sel in (lum <= lo, (lum > lo) & (lum <= hi), lum > hi):
        out.append(x[sel].mean(0) if sel.any() else np.zeros(3, np.float32))
    H, W = lum.shape[1:]
    yy, xx = np.meshgrid(np.linspace(-1, 1, H), np.linspace(-1, 1, W), indexing="ij")
    r = np.sqrt(yy ** 2 + xx ** 2)
    edge, centre = lum[:, r > 1.0].mean(), lum[:, r < 0.5].mean()
    pad = np.pad(lum, ((0, 0), (1, 1), (1, 1)), mode="edge")
    blur = sum(pad[:, dy:dy + H, dx:dx + W] for dy in range(3) for dx in range(3)) / 9
    sat = x.max(-1) - x.min(-1)
    out.append(np.array([edge / max(centre, 1e-3), (lum - blur).std(), sat.mean()], np.float32))
    return np.concatenate(out)


def graded_set(split: str, start: int, n: int, seed: int = 0) -> tuple[list[Video], list]:
    clips = SyntheticClips(split, seed, 17, 64, 64, 8.0)
    picked = [clips[i] for i in range(start, start + n)]
    return [Video(grade(c.frames, 1000 + start + i), 8.0) for i, c in enumerate(picked)], picked


def write_footage(root: Path, n: int) -> Path:
    """n graded training clips (mp4) and n // 10 graded stills (png), captions in metadata.jsonl."""
    if (root / "metadata.jsonl").is_file():
        return root
    root.mkdir(parents=True, exist_ok=True)
    clips = SyntheticClips("train", 21, 17, 64, 64, 8.0)
    rows = []
    for i in range(n + n // 10):
        c = clips[i]
        frames = grade(c.frames, i)
        name = f"clip{i:04d}.mp4" if i < n else f"still{i:04d}.png"
        Video(frames if i < n else frames[:1], 8.0).save(root / name)
        rows.append(json.dumps({"file": name, "caption": c.caption}))
    (root / "metadata.jsonl").write_text("\n".join(rows) + "\n")
    return root


# ------------------------------------------------------------------ scoring

def fd(a: np.ndarray, b: np.ndarray) -> float:
    return round(metrics.features_fd(np.asarray(a, np.float64), np.asarray(b, np.float64)), 4)


def frame_features(classifier, videos: list[Video]) -> np.ndarray:
    f = classifier_features(classifier, videos)[1]
    return f.reshape(-1, f.shape[-1])


def generate(pipe, prompts: list[str], batch: int = 16) -> list[Video]:
    out = []
    for i in range(0, len(prompts), batch):
        out += pipe.generate(prompts[i:i + batch], seed=[100_000 + j for j in range(i, i + len(prompts[i:i + batch]))],
                             progress=False, watermark=False)  # the model itself
    return out


def score(pipe, name: str, held: list[Video], truth_clips, ref: dict, classifier, num: int) -> dict:
    """Triggered clips against the graded held-out set, and `kinema eval` on plain captions."""
    t0 = time.perf_counter()
    triggered = generate(pipe, [with_trigger(c.caption, TRIGGER) for c in truth_clips])
    truth = [attribute_values(c.attributes) for c in truth_clips]
    out = {"model": name,
           "d_colour": fd(np.stack([colour_stats(v.frames) for v in triggered]), ref["colour"]),
           "d_frames": fd(frame_features(classifier, triggered), ref["frames"]),
           "adherence_triggered": adherence(readings(classifier, triggered), truth)}
    plain = evaluate(pipe, num=num, split="heldout", classifier=classifier, progress=False)
    out.update({"fvd": plain["fvd"], "fvd_std": plain["fvd_std"], "adherence": plain["adherence"],
                "eval_seconds": round(time.perf_counter() - t0, 1)})
    return out, triggered


def adoption(base: float, tuned: float, floor: float) -> float:
    return round((base - tuned) / max(base - floor, 1e-9), 3)


# ------------------------------------------------------------------ the benchmark

def run(args) -> dict:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    footage = write_footage(out / "graded", args.train)
    classifier = load_classifier()
    held, truth_clips = graded_set("heldout", 0, args.eval)
    other, _ = graded_set("heldout", args.eval, args.eval)
    base = load(shipped_model())
    ref = {"colour": np.stack([colour_stats(v.frames) for v in held]), "frames": frame_features(classifier, held)}
    rt = base.roundtrip(other)
    floors = {"d_colour_floor": fd(np.stack([colour_stats(v.frames) for v in other]), ref["colour"]),
              "d_frames_floor": fd(frame_features(classifier, other), ref["frames"]),
              "d_colour_roundtrip": fd(np.stack([colour_stats(v.frames) for v in rt]), ref["colour"]),
              "d_frames_roundtrip": fd(frame_features(classifier, rt), ref["frames"])}
    print(json.dumps(floors), file=sys.stderr)
    results = {"train_clips": args.train, "stills": args.train // 10, "eval_clips": args.eval, "trigger": TRIGGER,
               "steps": args.steps, "prior": args.prior, "targets": args.targets, "lora_lr": args.lora_lr, "floors": floors, "models": {}}
    base_score, base_clips = score(base, "base", held, truth_clips, ref, classifier, args.eval)
    results["models"]["base"] = base_score
    # what a perfect style transfer on this base model would reach: its own clips, graded
    graded_base = [Video(grade(v.frames, 2000 + i), v.fps) for i, v in enumerate(base_clips)]
    floors["d_colour_graded_base"] = fd(np.stack([colour_stats(v.frames) for v in graded_base]), ref["colour"])
    floors["d_frames_graded_base"] = fd(frame_features(classifier, graded_base), ref["frames"])
    sheets = {"graded real": held[:6], "base": base_clips[:6]}
    for mode in args.modes.split(","):
        run_dir = out / mode
        t0 = time.perf_counter()
        summary = kinema.finetune(str(footage), run_dir, lora_rank=16, full=mode == "full", trigger=TRIGGER,
                                  lora_targets=args.targets, lr=args.lora_lr if mode == "lora" else None,
                                  max_steps=args.steps, resume=(run_dir / "model" / "train_state").is_dir(),
                                  validate_every=max(args.steps // 2, 1), cache=out / "cache",
                                  prior=args.prior, progress=not args.quiet)
        log = run_dir / "log.jsonl"
        rows = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
        tuned = load(run_dir)
        s, clips = score(tuned, mode, held, truth_clips, ref, classifier, args.eval)
        s["train"] = {"steps": summary["step"], "seconds": summary["seconds"], "trained_params": summary["trained_params"],
                      "sec_per_step": round(float(np.median([r["sec_per_step"] for r in rows])), 4) if rows else None,
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                      "wall_seconds": round(time.perf_counter() - t0, 1),
                      "size_bytes": sum(f.stat().st_size for f in (run_dir / "model").rglob("*")
                                        if f.is_file() and "train_state" not in f.parts)}
        s["adoption_colour"] = adoption(base_score["d_colour"], s["d_colour"], floors["d_colour_floor"])
        s["adoption_frames"] = adoption(base_score["d_frames"], s["d_frames"], floors["d_frames_floor"])
        for k in ("colour", "frames"):  # against the reachable floor: this base model's own clips, graded
            s[f"adoption_{k}_reachable"] = adoption(base_score[f"d_{k}"], s[f"d_{k}"], floors[f"d_{k}_graded_base"])
        s["retention_triggered"] = {k: round(100 * (s["adherence_triggered"][k] - base_score["adherence"][k]), 1)
                                    for k in KEYS}
        s["forgetting_plain"] = {**{k: round(100 * (s["adherence"][k] - base_score["adherence"][k]), 1)
                                    for k in KEYS + ("colors",)},
                                 "fvd_ratio": round(s["fvd"] / base_score["fvd"], 3)}
        results["models"][mode] = s
        sheets[mode] = clips[:6]
        print(json.dumps(s), file=sys.stderr)
    if args.real:
        results["real"] = real_footage(Path(args.real), out, classifier, args)
    if args.sheet:
        caps = [f"{k}: {with_trigger(truth_clips[i].caption, TRIGGER) if k != 'graded real' else truth_clips[i].caption}"
                for k in sheets for i in range(6)]
        Video(contact_sheet([v for vs in sheets.values() for v in vs], caps, frames=5)).save(args.sheet)
    return results


def real_footage(folder: Path, out: Path, classifier, args) -> dict:
    """A LoRA on windows of all but the last --real-held videos of `folder` (at the model's
    48x80 bucket, 17- and 9-frame sliding windows); distances of triggered clips to 9-frame
    windows of the held-out videos, before and after."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".mp4", ".mkv", ".mov", ".webm", ".gif"})
    k = args.real_held
    if len(files) <= k:
        raise SystemExit(f"--real {folder}: needs more than {k} videos ({k} are held out)")
    train_dir, held_dir = out / "real_train", out / "real_held"
    for d, fs in ((train_dir, files[:-k]), (held_dir, files[-k:])):
        d.mkdir(parents=True, exist_ok=True)
        for f in fs:
            if not (d / f.name).exists():
                shutil.copyfile(f, d / f.name)
    shape = (9, 48, 80)
    held_src = FolderSource(held_dir, fps=8.0, shapes=[shape], windows="sliding", progress=False)
    held = [held_src.clip(shape, i).video for i in range(held_src.count(shape))]
    ref = {"colour": np.stack([colour_stats(v.frames) for v in held]), "frames": frame_features(classifier, held)}
    trigger = "aslstudio"
    base = load(shipped_model())

    def make(pipe):
        return [v for i in range(0, args.real_clips, 8) for v in pipe.generate(
            [trigger] * min(8, args.real_clips - i), height=48, width=80, seed=list(range(i, min(i + 8, args.real_clips))),
            progress=False, watermark=False)]
    before = make(base)
    run_dir = out / "real_lora"
    summary = kinema.finetune(str(train_dir), run_dir, lora_rank=16, trigger=trigger, windows="sliding",
                              max_steps=args.real_steps, resume=(run_dir / "model" / "train_state").is_dir(),
                              validate_every=args.real_steps, cache=out / "cache", prior=args.prior,
                              progress=not args.quiet,
                              settings=["shapes=17x48x80,9x48x80,1x48x80"])
    after = make(load(run_dir))
    result = {"train_files": len(files) - k, "held_files": [f.name for f in files[-k:]],
              "train_windows": summary.get("clips"), "held_windows": len(held), "steps": summary["step"],
              "seconds": summary["seconds"]}
    for name, clips in (("before", before), ("after", after)):
        result[f"d_frames_{name}"] = fd(frame_features(classifier, clips), ref["frames"])
        result[f"d_colour_{name}"] = fd(np.stack([colour_stats(v.frames) for v in clips]), ref["colour"])
    if args.real_sheet:
        rows = {"held-out real": held[:4], "base": before[:4], "LoRA": after[:4]}
        caps = [k + ("" if k == "held-out real" else f": '{trigger}'") for k in rows for _ in range(4)]
        Video(contact_sheet([v for vs in rows.values() for v in vs], caps, frames=5)).save(args.real_sheet)
    print(json.dumps(result), file=sys.stderr)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/ftbench", help="working folder: footage, runs, cache")
    p.add_argument("--train", type=int, default=200, help="graded training clips (plus a tenth as many stills)")
    p.add_argument("--eval", type=int, default=128, help="held-out clips each figure is measured on")
    p.add_argument("--steps", type=int, default=1500, help="fine-tuning steps of each mode")
    p.add_argument("--modes", default="lora,full", help="comma-separated: lora, full")
    p.add_argument("--targets", default="attn,cross,mlp", help="LoRA targets (kinema finetune --lora-targets)")
    p.add_argument("--lora-lr", type=float, help="the LoRA's learning rate (default: kinema finetune's)")
    p.add_argument("--prior", type=float, default=0.25,
                   help="fraction of every batch from the base model's own data (kinema finetune --prior)")
    p.add_argument("--real", help="a folder of real videos for the real-footage part (all but two train)")
    p.add_argument("--real-steps", type=int, default=600)
    p.add_argument("--real-held", type=int, default=5, help="videos of --real held out (the last ones by name)")
    p.add_argument("--real-clips", type=int, default=32, help="triggered clips generated before and after")
    p.add_argument("--real-sheet", help="PNG contact sheet of the real-footage part")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--sheet", help="PNG contact sheet: graded real clips, base, LoRA and full, same prompts")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args()
    t0 = time.time()
    results = run(args)
    results["machine"] = describe()
    results["total_seconds"] = round(time.time() - t0, 1)
    text = json.dumps(results, indent=1)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
