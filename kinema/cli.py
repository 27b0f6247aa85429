"""The `kinema` command. Each subcommand parses flags and calls a library function; no logic here.

Errors a user can fix print one line, `error: ...`, on stderr and exit with code 2
(`--debug` shows the traceback instead).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from . import __version__
from .config import COMPONENTS
from .errors import InputError, KinemaError

EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit code 2."""

    def error(self, message):
        sys.stderr.write(f"error: {message} (see '{self.prog} --help')\n")
        sys.exit(EXIT_USAGE)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show the full traceback when something goes wrong")


def _clip_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("clips")
    g.add_argument("--split", default="train", choices=["train", "heldout", "compositions"],
                   help="which split: train, heldout (own seed range) or compositions "
                        "(colour/shape pairs never seen in training) (default: train)")
    g.add_argument("--seed", type=int, default=0, help="dataset seed; the same seed gives the same clips (default: 0)")
    g.add_argument("--start", type=int, default=0, help="index of the first clip (default: 0)")
    g.add_argument("--frames", type=int, default=17, help="frames per clip, 4k+1 (default: 17)")
    g.add_argument("--height", type=int, default=64, help="clip height in pixels (default: 64)")
    g.add_argument("--width", type=int, default=64, help="clip width in pixels (default: 64)")
    g.add_argument("--fps", type=float, default=8.0, help="frames per second (default: 8)")
    p.add_argument("--json", action="store_true", help="print one JSON object describing what was written")


def build_parser() -> Parser:
    parser = Parser(prog="kinema", description="kinema: video generation models that train and run on a CPU.")
    parser.add_argument("--version", action="version", version=f"kinema {__version__}")
    _common(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    p = sub.add_parser("info", help="version, torch, device, threads, bf16 support, default model",
                       description="Print what kinema sees of this machine.")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of lines")
    _common(p)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("generate", help="generate a video from a text prompt",
                       description="Generate a video from a text prompt. An empty prompt \"\" generates "
                                   "unconditionally. The same seed gives the same video.")
    p.add_argument("prompt", help="what the video shows, e.g. \"a red circle moves left\"")
    p.add_argument("--model", help="model folder (or a training run folder holding one); default: the shipped model")
    p.add_argument("--frames", type=int, help="number of frames, 4k+1 (default: the model's, 17)")
    p.add_argument("--height", type=int, help="height in pixels, a multiple of 8 x patch (default: the model's)")
    p.add_argument("--width", type=int, help="width in pixels, a multiple of 8 x patch (default: the model's)")
    p.add_argument("--fps", type=float, help="frames per second of the output (default: the model's, 8)")
    p.add_argument("--steps", type=int, help="sampling steps (default: the model's)")
    p.add_argument("--guidance", type=float, help="classifier-free guidance scale; 1 disables it (default: the model's)")
    p.add_argument("--sampler", default="heun", choices=["heun", "euler"], help="ODE solver (default: heun)")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same video (default: 0)")
    p.add_argument("--out", default="out.mp4", help="output file: .mp4, .webm, .gif, .png folder (default: out.mp4)")
    p.add_argument("--json", action="store_true", help="print one JSON object describing what was done")
    _common(p)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("train", help="train a component on the procedural dataset",
                       description="Train a component from a named preset. The run folder gets model/ (the "
                                   "checkpoint, written atomically, resumable), log.jsonl, loss.png and samples/.")
    p.add_argument("component", choices=list(COMPONENTS), help="what to train")
    p.add_argument("--preset", help="recipe name: tiny (seconds, for tests) or shapes-64; not needed with --resume "
                                    "of an existing run, which keeps its own recipe")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--autoencoder", help="model or run folder with a trained autoencoder (transformer only)")
    p.add_argument("--max-steps", type=int, help="stop after this many steps in all (default: the preset's)")
    p.add_argument("--max-minutes", type=float, help="stop after this many minutes of this sitting")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out where it stopped, with the recipe it was started with "
                        "(--set given now still applies on top)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a preset setting, e.g. --set lr=3e-4 --set batch_size=16, or a model "
                        "setting, e.g. --set model.patch=1 --set model.dim=384 (repeatable)")
    p.add_argument("--json", action="store_true", help="print one JSON object describing the run")
    _common(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("classify", help="read what a video shows with the video classifier",
                       description="Predict a video's objects (colours, shapes, sizes, motions, speeds), camera move, "
                                   "object count and background, with confidences and a caption written from them. "
                                   "Any video is resampled and resized to the classifier's input; attributes read "
                                   "with low confidence are reported as uncertain (the clip is probably unlike the "
                                   "procedural dataset) rather than guessed silently.")
    p.add_argument("video", help="video file (mp4, webm, gif, ...) or a folder of PNG frames")
    p.add_argument("--model", help="classifier folder or training run (default: kinema/assets/classifier, the "
                                   "classifier kinema ships)")
    p.add_argument("--json", action="store_true", help="print one JSON object with every attribute and confidence")
    _common(p)
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser("eval", help="score a model: Fréchet distances, prompt adherence, temporal quality",
                       description="Generate N clips from the captions of a split of the procedural dataset and "
                                   "compare them with the N real clips those captions describe: fvd (Fréchet "
                                   "distance of classifier features) with fvd_floor (the same between two real sets "
                                   "of size N) and bootstrap deviations, fd_frames (per-frame, appearance only), "
                                   "adherence per attribute (adherence_real is the ceiling), and temporal metrics.")
    p.add_argument("--model", help="model folder or training run (required until a default model ships)")
    p.add_argument("--num", type=int, default=256, help="clips per set, 2-2048 (default: 256)")
    p.add_argument("--split", default="heldout", choices=["heldout", "compositions"],
                   help="held-out clips, or held-out colour/shape compositions (default: heldout)")
    p.add_argument("--seed", type=int, default=0, help="generation seed (default: 0)")
    p.add_argument("--steps", type=int, help="sampling steps (default: the model's)")
    p.add_argument("--guidance", type=float, help="guidance scale (default: the model's)")
    p.add_argument("--classifier", help="classifier folder or training run whose features and readings score "
                                        "the clips (default: kinema/assets/classifier, the one kinema ships)")
    p.add_argument("--i3d", metavar="PATH", help="also compute standard FVD with this local I3D TorchScript file "
                                                 "(StyleGAN-V i3d_torchscript.pt layout); nothing is downloaded")
    p.add_argument("--json", metavar="PATH", help="write every figure, with model, seed, N and timings, to PATH")
    p.add_argument("--report", metavar="DIR", help="write an HTML report with generated and real clip grids to DIR")
    _common(p)
    p.set_defaults(func=cmd_eval)

    ds = sub.add_parser("dataset", help="the built-in procedural dataset: preview or export clips",
                        description="The built-in procedural dataset of captioned clips.")
    _common(ds)
    dsub = ds.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser, required=True)
    p = dsub.add_parser("preview", help="a labelled grid of sample clips with their captions",
                        description="Write a labelled grid of sample clips: a contact sheet if OUT ends in "
                                    ".png, else a tiled, captioned video (.mp4, .gif, .webm, ...).")
    p.add_argument("--out", required=True, help="output path: grid.png or clips.mp4")
    p.add_argument("--num", type=int, default=8, help="number of clips to show, 1-64 (default: 8)")
    _clip_flags(p)
    _common(p)
    p.set_defaults(func=cmd_dataset_preview)
    p = dsub.add_parser("export", help="write N clips as video files plus metadata.jsonl",
                        description="Write N clips as video files plus metadata.jsonl (one JSON object per "
                                    "line: file, caption and every ground-truth attribute).")
    p.add_argument("--num", type=int, required=True, help="number of clips to write")
    p.add_argument("--out", required=True, help="output folder (created if missing)")
    p.add_argument("--format", default="mp4", choices=["mp4", "mov", "mkv", "webm", "gif"],
                   help="video file format (default: mp4)")
    _clip_flags(p)
    _common(p)
    p.set_defaults(func=cmd_dataset_export)
    return parser


# ------------------------------------------------------------------ commands

def _emit(args, result: dict, lines: list[str]) -> None:
    if getattr(args, "json", False):
        print(json.dumps(result))
    else:
        print("\n".join(lines))


def _clips(args):
    from .data.synthetic import SyntheticClips
    from .video import check_frames
    return SyntheticClips(args.split, args.seed, check_frames(args.frames), args.height, args.width, args.fps)


def cmd_info(args) -> None:
    import platform

    import torch

    from .runtime import describe
    info = {"kinema": __version__, "python": platform.python_version(), "torch": torch.__version__,
            **describe(), "default_model": None}
    lines = [f"{k:15s} {v}" for k, v in info.items()]
    lines[-1] = f"{'default_model':15s} none shipped yet (train one with `kinema train`)"
    _emit(args, info, lines)


def cmd_generate(args) -> None:
    from .pipeline import generate_to_file
    kwargs = {k: getattr(args, k) for k in ("frames", "height", "width", "fps", "steps", "guidance")}
    result = generate_to_file(args.model, args.prompt, args.out, seed=args.seed, sampler=args.sampler,
                              progress=not args.json, **kwargs)
    _emit(args, result, [f"wrote {result['out']} ({result['frames']} frames, {result['height']}x{result['width']}, "
                         f"{result['seconds']} s)"])


def cmd_train(args) -> None:
    from .config import preset
    from .train import stored_config, train
    stored = stored_config(args.out) if args.resume else None
    # resuming continues the run's own recipe (plus any --set given now), whatever the preset says
    # today; train() checks the run is of this component, lists the settings --set changes, and
    # says when there is nothing to resume
    if stored is None and args.preset is None and not args.resume:
        raise InputError("--preset is needed to start a run (only --resume of an existing run can do without one)")
    cfg = stored if stored is not None else preset(args.component, args.preset) if args.preset else None
    cfg = cfg.override(args.set) if cfg is not None else None
    result = train(args.component, cfg, args.out, max_steps=args.max_steps, max_minutes=args.max_minutes,
                   resume=args.resume, autoencoder=args.autoencoder, progress=not args.json)
    if result["rank"] == 0:  # under torchrun, one report
        _emit(args, result, [f"trained {args.component} ({result['params']:,} parameters) to step {result['step']}; "
                             f"model in {result['model']}"])


def cmd_classify(args) -> None:
    from .models.classifier import classify, load_classifier
    from .video import Video
    t0 = time.perf_counter()
    result = {"video": args.video, **classify(Video.read(args.video), load_classifier(args.model))}
    result["seconds"] = round(time.perf_counter() - t0, 3)
    lines = [result["caption"]]
    lines += [f"  {name:10s} {r['value'] if isinstance(r['value'], str) else ', '.join(r['value']):24s} "
              f"{r['confidence']:.0%}{'  (uncertain)' if name in result['uncertain'] else ''}"
              for name, r in result["attributes"].items()]
    if result["uncertain"]:
        lines.append(f"uncertain: {', '.join(result['uncertain'])}; this clip looks unlike what the classifier knows")
    _emit(args, result, lines)


def cmd_eval(args) -> None:
    from .eval_suite import check_num, evaluate, writable_folder, write_json, write_report
    from .models.classifier import load_classifier
    from .pipeline import load
    from .metrics import load_i3d
    check_num(args.num)  # cheap checks and everything that can fail before the long part
    for folder in (Path(args.json).parent if args.json else None, args.report):
        if folder:
            writable_folder(Path(folder))
    classifier = load_classifier(args.classifier)
    i3d = load_i3d(args.i3d) if args.i3d else None
    pipe = load(args.model)
    result = evaluate(pipe, num=args.num, split=args.split, seed=args.seed, classifier=classifier,
                      i3d=i3d, steps=args.steps, guidance=args.guidance)
    result = {"model": args.model, **result}
    if args.json:
        write_json(result, args.json)
    if args.report:
        write_report(result, args.report)
    print(f"fvd {result['fvd']:.2f} ± {result['fvd_std']:.2f} (real-vs-real floor {result['fvd_floor']:.2f} ± "
          f"{result['fvd_floor_std']:.2f}); fd_frames {result['fd_frames']:.2f} (floor {result['fd_frames_floor']:.2f})")
    print("adherence " + ", ".join(f"{k} {v:.0%} (real {result['adherence_real'][k]:.0%})"
                                   for k, v in result["adherence"].items()))
    print("temporal " + ", ".join(f"{k} {v} (real {result['temporal_real'][k]})" for k, v in result["temporal"].items()))
    for what, path in (("json", args.json), ("report", args.report)):
        if path:
            print(f"wrote {what}: {path}")


def cmd_dataset_preview(args) -> None:
    from .data.export import preview
    t0 = time.perf_counter()
    out = preview(_clips(args), args.out, num=args.num, start=args.start)
    _emit(args, {"out": str(out), "clips": args.num, "split": args.split, "seed": args.seed,
                 "frames": args.frames, "height": args.height, "width": args.width, "fps": args.fps,
                 "seconds": round(time.perf_counter() - t0, 3)}, [f"wrote {out}"])


def cmd_dataset_export(args) -> None:
    from .data.export import export
    t0 = time.perf_counter()
    result = export(_clips(args), args.out, num=args.num, start=args.start, fmt=args.format,
                    progress=not args.json)
    result["seconds"] = round(time.perf_counter() - t0, 3)
    _emit(args, result, [f"wrote {result['clips']} clips and {result['metadata']}"])


# ------------------------------------------------------------------ entry point

def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        args.func(args)
    except KinemaError as e:
        if getattr(args, "debug", False):
            raise
        sys.stderr.write(f"error: {e}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
