"""The `kinema` command. Each subcommand parses flags and calls a library function; no logic here.

Errors a user can fix print one line, `error: ...`, on stderr and exit with code 2
(`--debug` shows the traceback instead).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
import warnings
from pathlib import Path

from . import __version__
from .config import COMPONENTS
from .data.synthetic import check_clip_frames
from .errors import InputError, KinemaError
from .limits import (MAX_CLIP_FRAMES, MAX_CLIP_TOKENS, MAX_EVAL_CLIPS, MAX_EXPORT, MAX_GUIDANCE, MAX_PASS_FRAMES,
                     MAX_PREVIEW, MAX_SECONDS, MAX_SEED, MAX_STEPS)
from .checks import check_pass_frames, check_prompt, check_sampling, check_seed
from .video import MAX_SIDE, MIN_SIDE, check_fps, check_frames

EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit code 2."""

    def error(self, message):
        sys.stderr.write(f"error: {message} (see '{self.prog} --help')\n")
        sys.exit(EXIT_USAGE)


# ------------------------------------------------------------------ flag types
# Every number is range-checked where it is parsed: a bad value is argparse's one-line error,
# naming the valid range, before anything is loaded. NaN and infinities are refused everywhere.

def _checked(check):
    """An argparse type from a kinema check (InputError -> argparse's one-line error)."""
    def parse(text: str):
        try:
            return check(text)
        except InputError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return parse


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise InputError(f"expected a whole number, got {text!r:.40}") from None


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InputError(f"expected a number, got {text!r:.40}") from None


def whole(lo: int, hi: int):
    """A whole number in [lo, hi]."""
    def check(text: str) -> int:
        v = _integer(text)
        if not lo <= v <= hi:
            raise InputError(f"must be a whole number between {lo} and {hi}, got {v}")
        return v
    return _checked(check)


def real(lo: float, hi: float, *, open_lo: bool = False):
    """A finite number in [lo, hi] ((lo, hi] with open_lo)."""
    def check(text: str) -> float:
        v = _number(text)
        if not math.isfinite(v) or not (lo < v if open_lo else lo <= v) or v > hi:
            raise InputError(f"must be a finite number in {'(' if open_lo else '['}{lo:g}, {hi:g}], got {text!r:.40}")
        return v
    return _checked(check)


pass_frames_flag = _checked(lambda text: check_pass_frames(_integer(text)))  # 4k+1, nearest valid named
clip_frames_flag = _checked(lambda text: check_frames(check_clip_frames(_integer(text))))
fps_flag = _checked(lambda text: check_fps(_number(text)))
seed_flag = _checked(lambda text: check_seed(_integer(text)))
prompt_flag = _checked(check_prompt)


def _interval(text: str) -> tuple[float, float]:
    """--guidance-interval LO,HI: two times with 0 <= LO <= HI <= 1."""
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two times LO,HI such as 0,0.75, got {text!r:.40}") from None
    return _checked(lambda iv: check_sampling(guidance_interval=iv)["guidance_interval"])((lo, hi))


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show the full traceback when something goes wrong")


def _clip_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("clips")
    g.add_argument("--split", default="train", choices=["train", "heldout", "compositions"],
                   help="which split: train, heldout (own seed range) or compositions "
                        "(colour/shape pairs never seen in training) (default: train)")
    g.add_argument("--seed", type=seed_flag, default=0,
                   help=f"dataset seed, 0 ... {MAX_SEED}; the same seed gives the same clips (default: 0)")
    g.add_argument("--start", type=whole(0, MAX_SEED), default=0, help="index of the first clip (default: 0)")
    g.add_argument("--frames", type=clip_frames_flag, default=17,
                   help=f"frames per clip, 4k+1 up to {MAX_CLIP_FRAMES} (default: 17)")
    g.add_argument("--height", type=whole(MIN_SIDE, MAX_SIDE), default=64,
                   help=f"clip height in pixels, {MIN_SIDE} ... {MAX_SIDE} (default: 64)")
    g.add_argument("--width", type=whole(MIN_SIDE, MAX_SIDE), default=64,
                   help=f"clip width in pixels, {MIN_SIDE} ... {MAX_SIDE} (default: 64)")
    g.add_argument("--fps", type=fps_flag, default=8.0, help="frames per second (default: 8)")
    p.add_argument("--json", action="store_true", help="print one JSON object describing what was written")


def _size_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--frames", type=pass_frames_flag,
                   help=f"number of frames, 4k+1 up to {MAX_PASS_FRAMES} (default: the model's, 17; longer videos: "
                        f"--seconds)")
    p.add_argument("--height", type=whole(MIN_SIDE, MAX_SIDE),
                   help=f"height in pixels, a multiple of 8 x patch (default: the model's); at most "
                        f"{MAX_CLIP_TOKENS:,} transformer tokens a clip")
    p.add_argument("--width", type=whole(MIN_SIDE, MAX_SIDE),
                   help="width in pixels, a multiple of 8 x patch (default: the model's)")
    p.add_argument("--fps", type=fps_flag, help="frames per second of the output (default: the model's, 8)")


def _source_size_flags(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--height", type=whole(MIN_SIDE, MAX_SIDE),
                   help=f"height in pixels, a multiple of 8 x patch (default: the model's trained size nearest "
                        f"{what}'s aspect)")
    p.add_argument("--width", type=whole(MIN_SIDE, MAX_SIDE),
                   help="width in pixels, a multiple of 8 x patch (default: as --height)")
    p.add_argument("--fps", type=fps_flag, help=f"frames per second {what} is resampled to (default: the model's, 8)")


def _fit_flag(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--fit", default="crop", choices=["crop", "pad", "stretch"],
                   help=f"how to fit {what} of another size or aspect: crop (cover, then centre-crop), pad "
                        f"(fit, black bars) or stretch (default: crop)")


def _guidance_flags(p, default: str = "the model's") -> None:
    p.add_argument("--guidance", type=real(0, MAX_GUIDANCE),
                   help=f"classifier-free guidance scale, 0 ... {MAX_GUIDANCE:g}; 1 disables it (default: {default})")
    p.add_argument("--guidance-interval", type=_interval, metavar="LO,HI",
                   help="apply guidance only at noise levels t in [LO, HI] (t = 1 is pure noise), the "
                        f"conditional model alone elsewhere, which is also faster; e.g. 0,0.75 (default: {default})")


def _lora_spec(text: str):
    from .models.lora import parse_lora
    return parse_lora(text)


def _sampling_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="model folder (or a training run folder holding one); default: the shipped model")
    p.add_argument("--lora", action="append", default=[], type=_checked(_lora_spec), metavar="PATH[:SCALE]",
                   help="apply a LoRA adapter from `kinema finetune` (its run folder or adapter folder) at SCALE "
                        "(default 1; 0 = off); repeatable, e.g. --lora runs/look:0.8 --lora runs/motion:0.5")
    p.add_argument("--steps", type=whole(1, MAX_STEPS),
                   help=f"sampling steps, 1 ... {MAX_STEPS} (default: the model's)")
    _guidance_flags(p)
    p.add_argument("--sampler", default="heun", choices=["heun", "euler"], help="ODE solver (default: heun)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the transformer and the decoder first, weights frozen: 20-60 s on 2 "
                        "cores to compile, then steps 1.3-2x faster (worth it for long videos)")
    p.add_argument("--seed", type=seed_flag, default=0,
                   help=f"random seed, 0 ... {MAX_SEED}; the same seed gives the same video (default: 0)")
    p.add_argument("--out", default="out.mp4", help="output file: .mp4, .webm, .gif, .png folder (default: out.mp4)")
    p.add_argument("--sheet", metavar="PNG", help="also write a contact sheet of the result: evenly spaced frames "
                                                  "in a row with the prompt underneath")
    p.add_argument("--json", action="store_true", help="print one JSON object describing what was done (with "
                                                       "windows, seconds and peak memory)")
    g = p.add_argument_group("provenance (every output is marked twice by default; `kinema detect` reads both)")
    g.add_argument("--no-watermark", action="store_true",
                   help="leave out the invisible watermark: for research and evaluation only; the video can then "
                        "not be recognised as generated once its metadata is stripped")
    g.add_argument("--no-manifest", action="store_true",
                   help="leave out the signed C2PA manifest: for research only; nothing then records how the file "
                        "was made (WebM outputs never carry one: the C2PA SDK does not take the format)")
    g.add_argument("--manifest-prompt", action="store_true", help="record the prompt in the manifest (off by default)")
    g.add_argument("--sign-cert", metavar="PEM", help="certificate chain to sign manifests with, leaf first (default: "
                                                      "KINEMA_SIGN_CERT, else kinema's own local CA, made on first use)")
    g.add_argument("--sign-key", metavar="PEM", help="the private key of --sign-cert (default: KINEMA_SIGN_KEY)")
    _common(p)


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

    p = sub.add_parser("generate", help="generate a video from a text prompt (and frames you give)",
                       description="Generate a video from a text prompt. An empty prompt \"\" generates "
                                   "unconditionally. The same seed gives the same video. Frames you give are "
                                   "kept: --image animates a still, --last-image sets the last frame, --keyframe "
                                   "any frame; --seconds makes a long video window by window.")
    p.add_argument("prompt", type=prompt_flag,
                   help="what the video shows, e.g. \"a red circle moves left\"; with --seconds it may be "
                        "a schedule, \"0s: a red ball rolls left; 4s: the camera zooms in\"")
    _size_flags(p)
    p.add_argument("--image", help="image (or video: its first frame) to start from: image-to-video")
    p.add_argument("--last-image", help="image (or video: its first frame) to end on: first+last frame")
    p.add_argument("--keyframe", action="append", default=[], metavar="INDEX:PATH",
                   help="keep frame INDEX as the image at PATH, e.g. --keyframe 0:a.png --keyframe 16:b.png "
                        "(repeatable; a frame after 0 holds its group of 4 frames)")
    _fit_flag(p, "given images")
    p.add_argument("--seconds", type=real(0, MAX_SECONDS, open_lo=True),
                   help=f"make a long video of this many seconds, window by window (as extend does; at most "
                        f"{MAX_SECONDS:g})")
    _sampling_flags(p)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("extend", help="continue a video, window by window, for as long as you like",
                       description="Continue VIDEO by --seconds: each window is generated from the last frames "
                                   "so far (kept clean) and adds the rest, so memory stays flat with length. "
                                   "The output is the source (fitted to the model) followed by the new part.")
    p.add_argument("video", help="the clip to continue (any size and fps; it is fitted to the model's)")
    p.add_argument("--prompt", type=prompt_flag, default="",
                   help="what happens next, or a schedule \"0s: ...; 4s: ...\" with times "
                        "from the start of the new part (default: \"\", unconditional)")
    p.add_argument("--seconds", type=real(0, MAX_SECONDS, open_lo=True), required=True,
                   help=f"seconds to add (at most {MAX_SECONDS:g})")
    p.add_argument("--context", type=whole(1, (MAX_PASS_FRAMES - 1) // 4), default=2,
                   help="latent frames each window is conditioned on: 1 + 4 (context - 1) frames, fewer than the "
                        "window's (default: 2, 5 frames)")
    p.add_argument("--frames", type=pass_frames_flag,
                   help=f"frames per window, 4k+1 up to {MAX_PASS_FRAMES} (default: the model's, 17)")
    _source_size_flags(p, "the source")
    _fit_flag(p, "a source")
    _sampling_flags(p)
    p.set_defaults(func=cmd_extend)

    p = sub.add_parser("interpolate", help="in-between frames from two images (or two videos' end and start)",
                       description="Generate the frames between FIRST and LAST: the output starts at FIRST (its "
                                   "last frame, if a video) and ends at LAST (its first frame).")
    p.add_argument("first", help="image or video to start from")
    p.add_argument("last", help="image or video to end on")
    p.add_argument("--prompt", type=prompt_flag, default="",
                   help="what happens in between (default: \"\", unconditional)")
    _size_flags(p)
    _fit_flag(p, "images")
    _sampling_flags(p)
    p.set_defaults(func=cmd_interpolate)

    p = sub.add_parser("edit", help="restyle a video with a new prompt, or regenerate a masked region",
                       description="Video-to-video: VIDEO is encoded, noised to --strength and denoised with "
                                   "--prompt (0 returns the source, 1 ignores it). With --mask only the white "
                                   "part of the mask is regenerated; outside it the source is kept.")
    p.add_argument("video", help="the clip to edit (fitted to the model's size and fps; its first 4k+1 frames, "
                                 "at most 129)")
    p.add_argument("--prompt", type=prompt_flag, required=True, help="what the edited video shows")
    p.add_argument("--strength", type=real(0, 1),
                   help="how far from the source, 0 ... 1 (default: 0.6; 1 with --mask)")
    p.add_argument("--mask", help="image (applies to every frame) or video (frame by frame), white = regenerate; "
                                  "another size with the same aspect is resized with a warning")
    _source_size_flags(p, "the source")
    _fit_flag(p, "a source")
    _sampling_flags(p)
    p.set_defaults(func=cmd_edit)

    p = sub.add_parser("train", help="train a component on the procedural dataset or your own footage",
                       description="Train a component from a named preset. The run folder gets model/ (the "
                                   "checkpoint, written atomically, resumable), log.jsonl, loss.png and samples/.")
    p.add_argument("component", choices=list(COMPONENTS), help="what to train")
    p.add_argument("--preset", help="recipe name: tiny (seconds, for tests) or shapes-64; the autoencoder also has "
                                    "general-64 (real footage: a fine-tune with --init), the transformer default "
                                    "(the shipped model's shape buckets), the classifier shapes-64-objects (its "
                                    "second stage, with --init); not needed with --resume of an existing run, which "
                                    "keeps its own recipe")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--autoencoder", help="model or run folder with a trained autoencoder (transformer only)")
    p.add_argument("--max-steps", type=whole(1, 10**9),
                   help="stop after this many steps in all (default: the preset's); at most the recipe's "
                        "max_steps, the length of its learning-rate schedule (--set max_steps=N to train longer)")
    p.add_argument("--max-minutes", type=real(0, 10**6, open_lo=True),
                   help="stop after this many minutes of this sitting")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out where it stopped, with the recipe it was started with "
                        "(--set given now still applies on top)")
    p.add_argument("--init", metavar="DIR", help="start from the weights of the component in this model folder "
                                                 "(or training run, or component folder): fine-tuning; the sizes "
                                                 "must match, parts the source lacks (a new head) start fresh")
    p.add_argument("--data", action="append", default=[], metavar="SOURCE[:WEIGHT]",
                   help="what to train on (repeatable, mixed by weight): a folder of footage (videos and images "
                        "with captions, see 'kinema dataset scan'), 'procedural' (kinema's captioned shapes) or "
                        "'natural' (photographs and dead-leaves images filmed by a synthetic camera), e.g. --data "
                        "my_clips:3 --data procedural:1 (default: the preset's, procedural)")
    p.add_argument("--trigger", metavar="WORD", help="put WORD in front of every caption of folder data")
    p.add_argument("--windows", choices=["head", "uniform", "sliding"],
                   help="how folder videos are cut into clips: head (the first window of each shot), uniform (as "
                        "many non-overlapping windows as fit) or sliding (every window, half overlapping) "
                        "(default: uniform)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a preset setting, e.g. --set lr=3e-4 --set batch_size=16, or a model "
                        "setting, e.g. --set model.patch=1 --set model.dim=384, or a condition mode's weight, e.g. "
                        "--set condition_masks.image=0.2 (repeatable)")
    p.add_argument("--json", action="store_true", help="print one JSON object describing the run")
    _common(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("finetune", help="fine-tune a model on your own footage: a LoRA adapter or every weight",
                       description="Fine-tune a model (default: the shipped one) on a folder of videos and images "
                                   "with captions (see 'kinema dataset scan'), so it picks up their look. The run "
                                   "folder gets model/ (a LoRA adapter, or with --full a whole model), log.jsonl, "
                                   "loss.png and samples/ (the validation prompts with and without the trigger). "
                                   "Use it with --lora RUN on generate, extend, edit and interpolate.")
    p.add_argument("data", nargs="+", metavar="DATA[:WEIGHT]",
                   help="folder(s) of footage; 'procedural' mixes some of kinema's own clips back in")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--model", help="the model to fine-tune: a model folder or training run (default: the shipped model)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--lora-rank", type=whole(1, 1024), default=16,
                   help="rank of the LoRA adapter: its size and capacity (default: 16); at most the narrowest "
                        "targeted layer's width")
    g.add_argument("--full", action="store_true", help="train every weight of the transformer instead of an adapter "
                                                      "(a whole model folder, 50x the size of an adapter)")
    p.add_argument("--lora-alpha", type=real(0, 10**6, open_lo=True),
                   help="LoRA alpha: the update is scaled by alpha / rank (default: the rank, a scale of 1)")
    p.add_argument("--lora-targets", default="attn,cross,mlp", metavar="GROUPS",
                   help="layers that get an adapter, comma-separated: attn (self-attention), cross (attention to "
                        "the text), mlp, ada (adaLN modulation), final (output), embed (input embeddings) "
                        "(default: attn,cross,mlp)")
    p.add_argument("--trigger", default="", metavar="WORD",
                   help="put WORD in front of every caption: prompts with it call up the footage's look")
    p.add_argument("--windows", default="uniform", choices=["head", "uniform", "sliding"],
                   help="how videos are cut into clips: head (the first window of each shot), uniform (as many "
                        "non-overlapping windows as fit) or sliding (every window, half overlapping) (default: uniform)")
    p.add_argument("--prior", type=real(0, 0.9), default=0.25, metavar="FRACTION",
                   help="this fraction of every batch is the base model's own training data with its plain "
                        "captions (prior preservation): prompts without the trigger keep what the base model "
                        "made; 0 trains on the footage alone (default: 0.25)")
    p.add_argument("--max-steps", type=whole(1, 10**9),
                   help="training steps, also the length of the learning-rate schedule (default: 1000)")
    p.add_argument("--max-minutes", type=real(0, 10**6, open_lo=True),
                   help="stop after this many minutes of this sitting (checkpointed; --resume continues)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out where it stopped, exactly")
    p.add_argument("--lr", type=real(0, 1, open_lo=True),
                   help="peak learning rate (default: 3e-4 for a LoRA, 5e-5 with --full)")
    p.add_argument("--batch-size", type=whole(1, 4096), default=8, help="clips a step (default: 8)")
    p.add_argument("--validation-prompt", action="append", default=[], metavar="PROMPT",
                   help="a prompt of the validation sheets (repeatable; default: the data's first captions, with "
                        "and without the trigger)")
    p.add_argument("--validate-every", type=whole(1, 10**9), default=250,
                   help="draw the validation sheet (samples/step_N.png) every N steps (default: 250)")
    p.add_argument("--cache", metavar="DIR", help="where encoded latents and text states are kept between runs "
                                                  "(default: $KINEMA_CACHE or ~/.cache/kinema)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe setting, as in 'kinema train' (e.g. --set caption_dropout=0.2)")
    p.add_argument("--json", action="store_true", help="print one JSON object describing the run")
    _common(p)
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser("serve", help="an HTTP API with a job queue, a browser studio and metrics",
                       description="Serve a model over HTTP: POST /v1/videos makes a job (queued in SQLite under "
                                   "--data, so it survives restarts), GET /v1/videos/ID follows it, "
                                   "/v1/videos/ID/events streams its progress, / is the studio page, /docs the "
                                   "OpenAPI reference, /metrics Prometheus. Loopback by default; another --host "
                                   "needs an API key.")
    p.add_argument("--model", help="model folder (or a training run folder holding one); default: the shipped model")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=whole(1, 65535), default=8000, help="port (default: 8000)")
    p.add_argument("--data", default="kinema-data", metavar="DIR",
                   help="the job store, uploads and outputs (default: ./kinema-data); several servers and "
                        "--worker processes may share one")
    p.add_argument("--workers", type=whole(0, 64), default=1,
                   help="worker processes, each with the model loaded (default: 1; 0: the API alone, with "
                        "`kinema serve --worker` processes elsewhere on the same --data)")
    p.add_argument("--worker", action="store_true", help="run one worker on --data (no HTTP): more capacity for "
                                                         "a server that shares the folder")
    p.add_argument("--api-key", action="append", default=[], metavar="KEY",
                   help="require this key (Authorization: Bearer KEY); repeatable, each key sees only its own "
                        "jobs; also from KINEMA_API_KEY (comma-separated)")
    p.add_argument("--adapters", metavar="DIR", help="a folder of LoRA adapters (or fine-tuning runs) requests may "
                                                     "name by their folder name")
    p.add_argument("--max-frames", type=whole(1, MAX_PASS_FRAMES), default=129,
                   help="cap on frames a request (default: 129)")
    p.add_argument("--max-side", type=whole(8, 4096), default=512, help="cap on height and width (default: 512)")
    p.add_argument("--max-seconds", type=real(0, 600, open_lo=True), default=30.0,
                   help="cap on seconds of a long video or an extension (default: 30)")
    p.add_argument("--max-steps", type=whole(1, MAX_STEPS), default=100, help="cap on sampling steps (default: 100)")
    p.add_argument("--max-queue", type=whole(1, 10**6), default=64,
                   help="jobs that may wait; more are answered 429 with Retry-After (default: 64)")
    p.add_argument("--max-upload-mb", type=real(0, 4096, open_lo=True), default=64.0,
                   help="cap on an upload's size in MB (default: 64)")
    p.add_argument("--max-batch", type=whole(1, 64), default=8,
                   help="waiting jobs of one shape run together as one batch of at most this many (default: 8)")
    p.add_argument("--canary-every", type=real(0, 10**7), default=0.0, metavar="SECONDS",
                   help="every SECONDS, generate fixed prompts and seeds and compare the classifier's reading "
                        "with the first canary's: a drift logs a warning and sets kinema_canary_drift (default: off)")
    _common(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("export", help="a lean copy of a model to ship or share (float16, no training state)",
                       description="Copy a model folder (or a training run's) without its training state, its "
                                   "weights stored in --dtype; they load back into float32 modules. This is how "
                                   "kinema/assets/default was made from its training run.")
    p.add_argument("model", help="model folder or training run to copy (a LoRA fine-tuning run: with --merge-lora)")
    p.add_argument("--out", required=True, help="the new model folder (must not exist, or be empty)")
    p.add_argument("--merge-lora", action="store_true",
                   help="merge LoRA adapters into the transformer's weights: the run's own adapter when MODEL is a "
                        "LoRA run, and any given with --lora; the copy is a standalone model")
    p.add_argument("--lora", action="append", default=[], type=_checked(_lora_spec), metavar="PATH[:SCALE]",
                   help="an adapter to merge (with --merge-lora), at SCALE (default 1); repeatable")
    p.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"],
                   help="storage type of floating-point weights (default: float16, half the size of float32)")
    g = p.add_argument_group("sampling defaults of the copy (what generate and eval use when not told)")
    g.add_argument("--steps", type=whole(1, MAX_STEPS),
                   help=f"default sampling steps, 1 ... {MAX_STEPS} (default: the source's)")
    _guidance_flags(g, "the source's")
    p.add_argument("--json", action="store_true", help="print one JSON object describing what was written")
    _common(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("detect", help="is this video or image machine-made? read kinema's marks",
                       description="For each file: its C2PA manifest (present, signature valid, trusted, signer, "
                                   "what it says of how the file was made) and kinema's invisible watermark "
                                   "(detected or not, a p-value, the decoded model id and serial). The watermark "
                                   "survives what strips metadata (re-encoding, resizing); a file without either "
                                   "mark may still be generated. Exit code: 0 when every file carries a mark, 1 "
                                   "when one carries none, 2 on an error.")
    p.add_argument("files", nargs="+", metavar="FILE", help="videos or images")
    p.add_argument("--trust", metavar="PEM", action="append", default=[],
                   help="a CA certificate to trust for manifests (repeatable; default: kinema's local CA, and "
                        "KINEMA_TRUST_ANCHORS)")
    p.add_argument("--json", action="store_true", help="print one JSON object: a list of per-file reports")
    _common(p)
    p.set_defaults(func=cmd_detect)

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
    p.add_argument("--model", help="model folder or training run (default: the shipped model)")
    p.add_argument("--num", type=whole(2, MAX_EVAL_CLIPS), default=256,
                   help=f"clips per set, 2 ... {MAX_EVAL_CLIPS} (default: 256)")
    p.add_argument("--split", default="heldout", choices=["heldout", "compositions"],
                   help="held-out clips, or held-out colour/shape compositions (default: heldout)")
    p.add_argument("--seed", type=seed_flag, default=0, help=f"generation seed, 0 ... {MAX_SEED} (default: 0)")
    p.add_argument("--steps", type=whole(1, MAX_STEPS),
                   help=f"sampling steps, 1 ... {MAX_STEPS} (default: the model's)")
    _guidance_flags(p)
    p.add_argument("--compile", action="store_true", help="torch.compile the transformer and the decoder first "
                                                          "(~40 s; then faster sampling of the N clips)")
    p.add_argument("--roundtrip", action="store_true",
                   help="also score the autoencoder's reconstructions of the real clips (fvd_roundtrip, "
                        "adherence_roundtrip): the best a perfect transformer could do through this autoencoder")
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
    p.add_argument("--num", type=whole(1, MAX_PREVIEW), default=8,
                   help=f"number of clips to show, 1 ... {MAX_PREVIEW} (default: 8)")
    _clip_flags(p)
    _common(p)
    p.set_defaults(func=cmd_dataset_preview)
    p = dsub.add_parser("export", help="write N clips as video files plus metadata.jsonl",
                        description="Write N clips as video files plus metadata.jsonl (one JSON object per "
                                    "line: file, caption and every ground-truth attribute).")
    p.add_argument("--num", type=whole(1, MAX_EXPORT), required=True,
                   help=f"number of clips to write, 1 ... {MAX_EXPORT:,}")
    p.add_argument("--out", required=True, help="output folder (created if missing)")
    p.add_argument("--format", default="mp4", choices=["mp4", "mov", "mkv", "webm", "gif"],
                   help="video file format (default: mp4)")
    _clip_flags(p)
    _common(p)
    p.set_defaults(func=cmd_dataset_export)
    p = dsub.add_parser("scan", help="what training would read from a folder of footage",
                        description="Scan a folder of footage as `kinema train --data FOLDER` reads it: videos (mp4, "
                                    "mov, mkv, webm, avi, gif) and images (png, jpg, webp, ...) in the tree, captions "
                                    "from a same-name .txt or a metadata.jsonl / metadata.csv (file, caption). Each "
                                    "file goes to the aspect bucket nearest its own, each video is split at scene "
                                    "cuts and cut into windows; files that cannot be read are listed, not fatal.")
    p.add_argument("folder", help="folder of videos and images (searched recursively)")
    p.add_argument("--shapes", metavar="FxHxW,...",
                   help="training clip shapes, e.g. 17x64x64,17x48x80,1x64x64 (a 1-frame shape takes the images); "
                        "default: the shipped model's trained shapes, and 1-frame ones of their sizes")
    p.add_argument("--fps", type=fps_flag, default=8.0, help="frame rate videos are resampled to (default: 8)")
    p.add_argument("--windows", default="uniform", choices=["head", "uniform", "sliding"],
                   help="head (first window of each shot), uniform (non-overlapping, evenly spread) or sliding "
                        "(every window, half overlapping) (default: uniform)")
    p.add_argument("--trigger", default="", metavar="WORD", help="word put in front of every caption")
    p.add_argument("--sheet", metavar="PNG", help="write a contact sheet of sample windows with their captions")
    p.add_argument("--num", type=whole(1, MAX_PREVIEW), default=8,
                   help=f"windows on the contact sheet, 1 ... {MAX_PREVIEW} (default: 8)")
    p.add_argument("--json", action="store_true", help="print one JSON object with the whole report")
    _common(p)
    p.set_defaults(func=cmd_dataset_scan)
    return parser


# ------------------------------------------------------------------ commands

def _emit(args, result: dict, lines: list[str]) -> None:
    if getattr(args, "json", False):
        print(json.dumps(result))
    else:
        print("\n".join(lines))


def _clips(args):
    from .data.synthetic import SyntheticClips
    return SyntheticClips(args.split, args.seed, args.frames, args.height, args.width, args.fps)


def cmd_info(args) -> None:
    import platform

    import torch

    from .runtime import describe
    from .pipeline import DEFAULT_MODEL, shipped_model
    shipped = shipped_model()
    info = {"kinema": __version__, "python": platform.python_version(), "torch": torch.__version__,
            **describe(), "default_model": str(shipped) if shipped else None}
    lines = [f"{k:15s} {v}" for k, v in info.items()]
    if shipped is None:
        lines[-1] = f"{'default_model':15s} missing from {DEFAULT_MODEL} (pass --model DIR)"
    _emit(args, info, lines)


def _given(args, *names) -> dict:
    return {k: getattr(args, k) for k in names if getattr(args, k, None) is not None}


def _wrote(args, result: dict) -> None:
    more = f", {result['windows']} windows" if result["windows"] else ""
    _emit(args, result, [f"wrote {result['out']} ({result['frames']} frames, {result['height']}x{result['width']}, "
                         f"{result['video_seconds']} s of video in {result['seconds']} s{more})"]
          + ([f"wrote {result['sheet']} (contact sheet)"] if "sheet" in result else []))


def _generating(args, mode: str, inputs: dict, **settings) -> None:
    """Every generating command: one request through the job runner the server uses too
    (kinema.jobs.run: checked from the model's JSON first, in a moment, then the inputs are read
    fitted to the call's size, the model loaded, the mode run and the files written)."""
    from .jobs import run
    request = {"mode": mode, "prompt": args.prompt, "inputs": {k: v for k, v in inputs.items() if v},
               "loras": [[path, scale] for path, scale in args.lora], **settings,
               **{k: getattr(args, k) for k in ("steps", "guidance", "guidance_interval", "sampler", "seed")
                  if getattr(args, k, None) is not None},
               "watermark": not args.no_watermark, "manifest": not args.no_manifest,
               "manifest_prompt": args.manifest_prompt, "sign_cert": args.sign_cert, "sign_key": args.sign_key}
    _wrote(args, run(request, {"video": args.out, "sheet": args.sheet}, model=args.model, compile=args.compile,
                     progress=not args.json))


def _keyframes(specs: list[str]) -> dict:
    out = {}
    for spec in specs:
        index, sep, path = spec.partition(":")
        if not sep or not re.fullmatch(r"-?[0-9]{1,9}", index.strip()) or not path:
            raise InputError(f"--keyframe expects INDEX:PATH with a frame number, e.g. 16:b.png, got {spec!r}")
        out[int(index)] = path
    return out


def cmd_generate(args) -> None:
    _generating(args, "generate", {"image": args.image, "last_image": args.last_image,
                                   "keyframes": _keyframes(args.keyframe)},
                **_given(args, "frames", "height", "width", "fps", "seconds", "fit"))


def cmd_extend(args) -> None:
    _generating(args, "extend", {"video": args.video},
                **_given(args, "frames", "height", "width", "fps", "seconds", "context", "fit"))


def cmd_interpolate(args) -> None:
    _generating(args, "interpolate", {"first": args.first, "last": args.last},
                **_given(args, "frames", "height", "width", "fps", "fit"))


def cmd_edit(args) -> None:
    _generating(args, "edit", {"video": args.video, "mask": args.mask},
                **_given(args, "height", "width", "fps", "strength", "fit"))


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
    given = args.set + ([f"init={args.init}"] if args.init else []) + ([f"data={','.join(args.data)}"] if args.data else [])
    given += [f"{k}={getattr(args, k)}" for k in ("trigger", "windows") if getattr(args, k) is not None]
    cfg = cfg.override(given) if cfg is not None else None
    result = train(args.component, cfg, args.out, max_steps=args.max_steps, max_minutes=args.max_minutes,
                   resume=args.resume, autoencoder=args.autoencoder, progress=not args.json)
    if result["rank"] == 0:  # under torchrun, one report
        _emit(args, result, [f"trained {args.component} ({result['params']:,} parameters) to step {result['step']}; "
                             f"model in {result['model']}"])


def cmd_finetune(args) -> None:
    from .finetuning import finetune
    result = finetune(args.data, args.out, model=args.model, lora_rank=args.lora_rank, lora_alpha=args.lora_alpha,
                      lora_targets=args.lora_targets, full=args.full, trigger=args.trigger, windows=args.windows,
                      max_steps=args.max_steps, max_minutes=args.max_minutes, resume=args.resume,
                      batch_size=args.batch_size, lr=args.lr, prompts=args.validation_prompt or None,
                      validate_every=args.validate_every, settings=args.set, cache=args.cache, prior=args.prior,
                      progress=not args.json)
    if result["rank"] != 0:  # under torchrun, one report
        return
    what = "every weight" if args.full else f"a rank-{args.lora_rank} LoRA adapter"
    _emit(args, result, [f"fine-tuned {what} ({result['trained_params']:,} parameters) to step {result['step']} on "
                         f"{result.get('clips', '?')} clips ({result.get('encoded', 0)} encoded, the rest from the "
                         f"cache); model in {result['model']}"])


def cmd_serve(args) -> None:
    import os

    from .server import run_worker, serve
    from .server.app import Limits
    keys = tuple(args.api_key) + tuple(k.strip() for k in os.environ.get("KINEMA_API_KEY", "").split(",") if k.strip())
    if args.worker:
        run_worker(model=args.model, data=args.data, batch=args.max_batch, adapters=args.adapters)
        return
    if args.adapters and not Path(args.adapters).is_dir():
        raise InputError(f"--adapters {args.adapters}: no such folder")
    limits = Limits(max_frames=args.max_frames, max_side=args.max_side, max_seconds=args.max_seconds,
                    max_steps=args.max_steps, max_queue=args.max_queue, max_upload_mb=args.max_upload_mb,
                    max_batch=args.max_batch)
    serve(model=args.model, host=args.host, port=args.port, data=args.data, workers=args.workers, keys=keys,
          limits=limits, adapters=args.adapters, canary_every=args.canary_every)


def cmd_export(args) -> None:
    import torch

    from .checkpoint import export_model
    from .errors import WriteError
    from .checks import check_sampling
    from .pipeline import model_folder
    # the defaults are checked before anything is written: a copy that `generate` would refuse is never made
    defaults = check_sampling(args.steps, args.guidance, args.guidance_interval)
    out = Path(args.out)
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        raise WriteError(f"cannot write {out}: it exists{' and is not empty' if out.is_dir() else ''}; export "
                         f"writes a new model folder (name one that does not exist, or an empty folder)")
    if args.merge_lora:
        from .models.lora import merge
        out = merge(args.model, args.lora, out, getattr(torch, args.dtype), defaults)
    else:
        if args.lora:
            raise InputError("--lora on export merges adapters into the copy: add --merge-lora")
        from .checkpoint import read_index
        from .pipeline import lora_base
        if lora_base(model_folder(args.model), read_index(model_folder(args.model))) is not None:
            raise InputError(f"{args.model} is a LoRA fine-tuning run (an adapter on its base model): export it "
                             f"with --merge-lora for a standalone model, or use it as it is with --lora")
        out = export_model(model_folder(args.model), out, getattr(torch, args.dtype), defaults)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    _emit(args, {"out": str(out), "dtype": args.dtype, "bytes": size, "defaults": defaults},
          [f"wrote {out} ({size / 2 ** 20:.1f} MB, {args.dtype} weights)"])


def cmd_detect(args) -> int:
    from .provenance import detect_file
    trust = [Path(p).read_text() for p in args.trust] or None
    reports, lines = [], []
    for f in args.files:
        r = detect_file(f, trust)
        reports.append(r)
        m, w = r["manifest"], r["watermark"]
        if m.get("present"):
            how = "trusted" if m["trusted"] else "valid, untrusted signer" if m["valid"] else \
                f"INVALID ({', '.join(m.get('failures') or [])})"
            made = "generated" if m.get("generated") else "not marked as generated"
            man = f"manifest {how}, signed by {m.get('signer')}, {made}"
        else:
            man = "no manifest" + ("" if m.get("supported", True) else " (format cannot hold one)")
        payload = (f"model id {w['model_id']}, serial {w['serial']}" if w.get("payload") is not None
                   else "payload unreadable: failed its CRC")
        wat = f"watermark detected (p = {w['p_value']:.1e}; {payload})" if w.get("detected") else "no watermark"
        lines.append(f"{f}: {man}; {wat}")
    _emit(args, {"files": reports}, lines)
    marked = [r["manifest"].get("present") and r["manifest"].get("valid") or r["watermark"].get("detected")
              for r in reports]
    return 0 if all(marked) else 1


def cmd_classify(args) -> None:
    from .models.classifier import classify, load_classifier
    from .video import Video
    t0 = time.perf_counter()
    model = load_classifier(args.model)
    c = model.config
    video = Video.read(args.video, fit="crop", fps=c.fps, height=c.size, width=c.size)  # the classifier's input
    result = {"video": args.video, **classify(video, model)}
    result["seconds"] = round(time.perf_counter() - t0, 3)
    lines = [result["caption"]]
    lines += [f"  object {i + 1}: {o['size']} {o['color']} {o['shape']}, {o['motion']}"
              + (f" ({o['speed']})" if o["speed"] else "") + f"  {o['confidence']:.0%}"
              for i, o in enumerate(result["objects"])]
    lines += [f"  {name:10s} {r['value'] if isinstance(r['value'], str) else ', '.join(r['value']):24s} "
              f"{r['confidence']:.0%}{'  (uncertain)' if name in result['uncertain'] else ''}"
              for name, r in result["attributes"].items()]
    if not result["in_domain"]:
        why = (f"domain score {result['domain_score']:g} > {result['domain_threshold']:g}" if "domain_score" in result
               else f"uncertain: {', '.join(result['uncertain'])}")
        lines.append(f"out of domain ({why}): this clip is unlike the procedural clips the classifier was trained "
                     f"on, so the reading above is a guess")
    elif result["uncertain"]:
        lines.append(f"uncertain: {', '.join(result['uncertain'])}")
    _emit(args, result, lines)


def cmd_eval(args) -> None:
    from .eval_suite import check_json_path, check_report_folder, evaluate, write_json, write_report
    from .models.classifier import load_classifier
    from .pipeline import load
    from .metrics import load_i3d
    # everything that can fail before the long part: where the results go (nothing is created yet)
    if args.json:
        check_json_path(args.json)
    if args.report:
        check_report_folder(args.report)
    classifier = load_classifier(args.classifier)
    i3d = load_i3d(args.i3d) if args.i3d else None
    pipe = load(args.model)
    if args.compile:
        pipe.compile()
    result = evaluate(pipe, num=args.num, split=args.split, seed=args.seed, classifier=classifier,
                      i3d=i3d, steps=args.steps, guidance=args.guidance, guidance_interval=args.guidance_interval,
                      roundtrip=args.roundtrip)
    result = {"model": args.model or "shipped default", **result}
    if args.json:
        write_json(result, args.json)
    if args.report:
        write_report(result, args.report)
    print(f"fvd {result['fvd']:.2f} ± {result['fvd_std']:.2f} (real-vs-real floor {result['fvd_floor']:.2f} ± "
          f"{result['fvd_floor_std']:.2f}); fd_frames {result['fd_frames']:.2f} (floor {result['fd_frames_floor']:.2f})")
    print("adherence " + ", ".join(f"{k} {v:.0%} (real {result['adherence_real'][k]:.0%})"
                                   for k, v in result["adherence"].items()))
    print("by number of objects: " + "; ".join(
        f"{n} ({a['clips']} clips) " + ", ".join(f"{k} {a[k]:.0%}" for k in ("colors", "shapes", "motions"))
        for n, a in result["adherence_by_count"].items()))
    print("temporal " + ", ".join(f"{k} {v} (real {result['temporal_real'][k]})" for k, v in result["temporal"].items()))
    if "fvd_roundtrip" in result:
        print(f"autoencoder round trip (a perfect transformer's ceiling): fvd {result['fvd_roundtrip']:.2f}; adherence "
              + ", ".join(f"{k} {v:.0%}" for k, v in result["adherence_roundtrip"].items()))
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


def cmd_dataset_scan(args) -> None:
    from .checks import check_sheet
    from .data.folder import FolderSource, sample_sheet, scan_shapes
    check_sheet(args.sheet)
    source = FolderSource(args.folder, fps=args.fps, shapes=scan_shapes(args.shapes), trigger=args.trigger,
                          windows=args.windows, progress=not args.json)
    report = source.report.to_dict()
    if args.sheet:
        report["sheet"] = str(sample_sheet(source, args.sheet, num=args.num))
    c = report["captions"]
    lines = [f"scanned {report['root']}: {report['files']} files ({report['videos']} videos, {report['images']} "
             f"images), {report['seconds']:g} s of video at {report['fps']:g} fps, {report['scene_cuts']} scene cuts",
             f"captions: {c['found']} found, {c['missing']} missing"
             + (f" (they train with {'the trigger' if args.trigger.strip() else 'an empty caption'})" if c["missing"] else ""),
             "windows: " + ", ".join(f"{k}: {v}" for k, v in report["windows"].items()),
             "buckets (files): " + ", ".join(f"{k}: {v}" for k, v in report["buckets"].items())]
    if report["skipped"]:
        lines.append(f"skipped {len(report['skipped'])} file(s) that cannot be read:")
        lines += [f"  {s['file']}: {s['reason']}" for s in report["skipped"]]
    if report["dropped"]:
        lines.append(f"left out {len(report['dropped'])} shot(s) or file(s) no training shape takes:")
        lines += [f"  {s['file']}: {s['reason']}" for s in report["dropped"][:20]]
        lines += [f"  ... and {len(report['dropped']) - 20} more"] if len(report["dropped"]) > 20 else []
    lines += [f"wrote {report['sheet']} (contact sheet)"] if args.sheet else []
    _emit(args, report, lines)


# ------------------------------------------------------------------ entry point

def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split("\n")).strip() or type(e).__name__


def _out_of_memory(e: BaseException) -> str | None:
    """What to say for an allocation that failed (an environment condition, not a bug), else None.
    torch raises a RuntimeError on the CPU, torch.OutOfMemoryError on CUDA, numpy a MemoryError."""
    text = str(e)
    if not (isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError"
            or (isinstance(e, RuntimeError) and "can't allocate memory" in text)):
        return None
    asked = re.search(r"allocate (\d+) bytes", text)
    detail = f"{int(asked.group(1)) / 2**30:.1f} GiB more was asked for" if asked else "an allocation failed"
    return (f"out of memory ({detail}); ask for less: fewer frames, a smaller size or fewer clips, "
            f"or free memory for kinema")


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    (file or sys.stderr).write(f"warning: {message}\n")


def main(argv: list[str] | None = None) -> int:
    # a path given in another encoding comes in with surrogate escapes: print it back as its bytes
    if hasattr(sys.stdout, "reconfigure"):
        try:
            sys.stdout.reconfigure(errors="surrogateescape")
        except (ValueError, OSError):  # pragma: no cover - a stream that cannot change
            pass
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):  # `kinema` alone: the commands, and the one error line
        parser.print_help()
        sys.stderr.write("error: no command given; choose one of the commands above (see 'kinema --help')\n")
        return EXIT_USAGE
    if not getattr(args, "debug", False):  # kinema's warnings as one line each, without source lines
        warnings.showwarning = _warning_line
    try:
        code = args.func(args)
    except KinemaError as e:
        if getattr(args, "debug", False):
            raise
        sys.stderr.write(f"error: {_one_line(e)}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 130
    except (MemoryError, RuntimeError) as e:
        message = _out_of_memory(e)
        if message is None or getattr(args, "debug", False):
            raise
        sys.stderr.write(f"error: {message}\n")
        return EXIT_USAGE
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
