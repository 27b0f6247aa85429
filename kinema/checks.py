"""A request's values checked against kinema's limits (kinema/limits.py), before any work.

One function per value, each raising an InputError that names the valid range: the Pipeline
checks every call with them, and the CLI (and, next, the server) checks a request with them
before a model is loaded, so a bad request fails in a moment, not after seconds of loading.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from .diffusion.sampling import SAMPLERS
from .errors import InputError
from .limits import (MAX_CALL_PIXELS, MAX_CLIP_TOKENS, MAX_GUIDANCE, MAX_LONG_PIXELS, MAX_PASS_FRAMES,
                     MAX_PROMPT_CHARS, MAX_PROMPTS, MAX_SECONDS, MAX_SEED, MAX_STEPS, SPATIAL, TEMPORAL)
from .video import MAX_SIDE, Video, check_fps, check_frames, check_output

MODES = ("generate", "extend", "interpolate", "edit")  # a Pipeline's generating methods


def check_mode(mode) -> str:
    if mode not in MODES:
        raise InputError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    return mode


DEFAULTS = {"frames": 17, "height": 64, "width": 64, "fps": 8.0, "steps": 16, "guidance": 4.0,
            "guidance_interval": [0.0, 1.0]}  # what a model folder's index does not say
DEVICES = "cpu, cuda or cuda:N"


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_real(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_)) \
        and math.isfinite(v)


def check_seed(seed) -> int:
    """A seed: a whole number in 0 ... MAX_SEED (2**63 - 1)."""
    if not _is_int(seed) or not 0 <= seed <= MAX_SEED:
        raise InputError(f"seed must be a whole number between 0 and {MAX_SEED} (2**63 - 1), got {seed!r}")
    return int(seed)


def check_seeds(seed, clips: int):
    """One seed for a batch, or a list of one seed per clip."""
    if isinstance(seed, (list, tuple)):
        if len(seed) != clips:
            raise InputError(f"got {len(seed)} seeds for {clips} prompts: give one seed, or one per prompt")
        return [check_seed(s) for s in seed]
    return check_seed(seed)


def _derive(seed: int, k: int) -> int:
    """The k-th seed after `seed`, wrapped into the seed range (unchanged for ordinary seeds)."""
    return (seed + k) % (MAX_SEED + 1)


def check_prompt(prompt, what: str = "prompt") -> str:
    """Text the text encoder can read: a str of at most MAX_PROMPT_CHARS characters, valid UTF-8
    (a command line in another encoding arrives with surrogate escapes such as '\\udcff')."""
    if not isinstance(prompt, str):
        raise InputError(f"{what} must be text (a str), got {type(prompt).__name__} {prompt!r:.80}")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise InputError(f"{what} is {len(prompt):,} characters, over the limit of {MAX_PROMPT_CHARS:,} (the text "
                         f"encoder reads only the first 64 tokens, a few hundred characters): shorten it")
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InputError(f"{what} is not valid text: character {e.start} ({prompt[e.start]!r}) is not UTF-8; "
                         f"give the prompt in UTF-8 (check the terminal's encoding)") from None
    return prompt


def check_prompts(prompt) -> list[str]:
    """A prompt, or a non-empty list of at most MAX_PROMPTS prompts, as a list."""
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, (list, tuple)) or not 1 <= len(prompts) <= MAX_PROMPTS:
        raise InputError(f"prompt must be a str or a list of 1 to {MAX_PROMPTS} str, got {prompt!r:.80}")
    return [check_prompt(p) for p in prompts]


def check_sampling(steps=None, guidance=None, guidance_interval=None) -> dict:
    """The sampling settings given (None: not given), checked: the Pipeline checks them at every
    call and `kinema export` before writing them into a model's defaults."""
    out = {}
    if steps is not None:
        if not _is_int(steps) or not 1 <= steps <= MAX_STEPS:
            raise InputError(f"steps must be a whole number between 1 and {MAX_STEPS}, got {steps!r}")
        out["steps"] = int(steps)
    if guidance is not None:
        if not _is_real(guidance) or not 0 <= guidance <= MAX_GUIDANCE:
            raise InputError(f"guidance must be a finite number between 0 and {MAX_GUIDANCE:g} (1 disables it), "
                             f"got {guidance!r}")
        out["guidance"] = float(guidance)
    if guidance_interval is not None:
        iv = guidance_interval
        if not (isinstance(iv, (list, tuple)) and len(iv) == 2 and all(map(_is_real, iv))
                and 0.0 <= iv[0] <= iv[1] <= 1.0):
            raise InputError(f"the guidance interval must be two times LO,HI with 0 <= LO <= HI <= 1, e.g. 0,0.75; "
                             f"got {iv!r}")
        out["guidance_interval"] = (float(iv[0]), float(iv[1]))
    return out


def check_seconds(seconds) -> float:
    if not _is_real(seconds) or not 0 < seconds <= MAX_SECONDS:
        raise InputError(f"seconds must be a finite number in (0, {MAX_SECONDS:g}], got {seconds!r}")
    return float(seconds)


def check_strength(strength) -> float:
    if not _is_real(strength) or not 0 <= strength <= 1:
        raise InputError(f"strength must be a finite number between 0 and 1, got {strength!r}")
    return float(strength)


def check_shift(shift):
    """The sampling schedule's shift, or None (it then grows with the token count)."""
    if shift is not None and (not _is_real(shift) or not 0 < shift <= 100):
        raise InputError(f"shift must be a finite number in (0, 100] or None, got {shift!r}")
    return shift


def check_pass_frames(frames) -> int:
    """Frames of one pass: 4k+1, at most MAX_PASS_FRAMES."""
    if not _is_int(frames):
        raise InputError(f"frames must be a whole number of the form 4k+1 (1, 5, 9, ..., {MAX_PASS_FRAMES}), "
                         f"got {frames!r}")
    if frames > MAX_PASS_FRAMES:
        raise InputError(f"frames={frames} is over the limit of {MAX_PASS_FRAMES} frames in one pass; make long "
                         f"videos window by window with --seconds (Python: generate(..., seconds=S))")
    return check_frames(int(frames))


def _check_side(name: str, n, stride: int) -> int:
    top = MAX_SIDE // stride * stride
    if not _is_int(n):
        raise InputError(f"{name} must be a whole number of pixels, a multiple of {stride} between {stride} and "
                         f"{top}, got {n!r}")
    if n < stride or n > top or n % stride:
        lo = min(max(stride, n // stride * stride), top)
        hint = f"{lo} or {lo + stride}" if stride < n < top and n % stride else f"{lo}"
        raise InputError(f"{name} must be a multiple of {stride} between {stride} and {top}, got {n}; "
                         f"nearest valid: {hint}")
    return int(n)


def check_budget(clips: int, frames: int, height: int, width: int, patch: int) -> None:
    """Refuse a call over MAX_CALL_PIXELS or MAX_CLIP_TOKENS before anything is allocated."""
    pixels = clips * frames * height * width
    if pixels > MAX_CALL_PIXELS:
        what = f"{clips} clips x " if clips > 1 else ""
        fewer = ", a smaller size or fewer prompts a call" if clips > 1 else " or a smaller size"
        raise InputError(f"{what}{frames} frames x {height}x{width} is {pixels:,} pixels, over the limit of "
                         f"{MAX_CALL_PIXELS:,} a call (~6.5 GB of memory): ask for fewer frames{fewer}; long "
                         f"videos go window by window with --seconds")
    tokens = (1 + (frames - 1) // TEMPORAL) * (height // (SPATIAL * patch)) * (width // (SPATIAL * patch))
    if tokens > MAX_CLIP_TOKENS:
        raise InputError(f"{frames} frames at {height}x{width} make {tokens:,} transformer tokens, over the limit of "
                         f"{MAX_CLIP_TOKENS:,} a clip (attention time grows with the square of the tokens): ask "
                         f"for a smaller size or fewer frames; long videos go window by window with --seconds")


def check_long(frames: int, height: int, width: int) -> None:
    """A long video's frames are all kept in memory: at most MAX_LONG_PIXELS pixels in all."""
    if frames * height * width > MAX_LONG_PIXELS:
        most = MAX_LONG_PIXELS // (height * width)
        raise InputError(f"{frames:,} frames of {height}x{width} are over the limit of {MAX_LONG_PIXELS:,} pixels "
                         f"for one video: at most {most:,} frames at this size; ask for fewer seconds, a lower "
                         f"fps or a smaller size")


def check_device(device) -> torch.device:
    """A device this machine has: cpu, or cuda (cuda:N) where CUDA is available."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise InputError(f"unknown device {device!r}; use {DEVICES}") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise InputError(f"device {device!r}: CUDA is not available on this machine; use cpu")
        if dev.index is not None and dev.index >= count:
            raise InputError(f"device {device!r}: this machine has {count} CUDA device(s), cuda:0 ... cuda:{count - 1}")
    elif dev.type != "cpu":
        raise InputError(f"device {device!r} is not supported; use {DEVICES}")
    return dev


def _check_video(v, what: str) -> Video:
    if not isinstance(v, Video):
        raise InputError(f"{what} must be a kinema.Video (e.g. Video.read(path)), got {type(v).__name__}")
    return v


def settings(defaults: dict, patch: int, frames=None, height=None, width=None, fps=None, steps=None,
             guidance=None, sampler="heun", interval=None, clips: int = 1) -> dict:
    """A call's settings (None: the model's `defaults`), every one checked, and the call's size
    checked against the limits: what a Pipeline mode checks first, and `preflight` before loading."""
    d = {**DEFAULTS, **defaults}
    frames = check_pass_frames(d["frames"] if frames is None else frames)
    stride = SPATIAL * patch
    height = _check_side("height", d["height"] if height is None else height, stride)
    width = _check_side("width", d["width"] if width is None else width, stride)
    fps = check_fps(d["fps"] if fps is None else fps)
    if sampler not in SAMPLERS:
        raise InputError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    sampling = check_sampling(d["steps"] if steps is None else steps, d["guidance"] if guidance is None else guidance,
                              d["guidance_interval"] if interval is None else interval)
    check_budget(clips, frames, height, width, patch)
    return {"frames": frames, "height": height, "width": width, "fps": fps, "sampler": sampler, **sampling}


def source_size(defaults: dict, source_hw: tuple[int, int] | None, height=None, width=None) -> tuple:
    """The size a call on a source of `source_hw` (height, width) makes when not told: the model's
    trained size (defaults["sizes"], from its trained shapes) nearest the source's aspect, so a
    portrait clip stays portrait. A given height or width wins (both None: choose)."""
    if height is not None or width is not None or source_hw is None:
        return height, width
    sizes = [tuple(s) for s in defaults.get("sizes") or ()] or [(defaults.get("height", 64), defaults.get("width", 64))]
    from .data.folder import nearest_bucket
    return nearest_bucket(*source_hw, sizes)


def given_frames(image, last_image, keyframes, frames: int) -> dict[int, Video]:
    """{frame index: image} of every frame given to `generate` (image: frame 0, last_image: the
    last frame, keyframes: {index: image}), checked against a clip of `frames` frames."""
    if keyframes is not None and not isinstance(keyframes, dict):
        raise InputError(f"keyframes must be a dict {{frame index: Video}}, got {type(keyframes).__name__}")
    images = dict(keyframes or {})
    for i, im in ((0, image), (frames - 1, last_image)):
        if im is not None:
            images[i] = im
    for i, im in images.items():
        if not _is_int(i) or not 0 <= i < frames:
            raise InputError(f"frame index {i!r} is outside the video's frames 0 ... {frames - 1}")
        _check_video(im, f"the image for frame {i}")
    return {int(i): im for i, im in images.items()}


def check_context(context, frames: int) -> int:
    """Latent frames of context of a window of `frames` frames: at least 1, and fewer than its own."""
    if not _is_int(context) or context < 1:
        raise InputError(f"context must be a whole number of latent frames, at least 1, got {context!r}")
    if context >= 1 + (frames - 1) // TEMPORAL:
        raise InputError(f"windows of {frames} frames leave nothing to add after {context} latent frames of "
                         f"context ({1 + TEMPORAL * (context - 1)} frames): make windows of at least "
                         f"{1 + TEMPORAL * context} frames (--frames), or give less context")
    return int(context)


def check_sheet(sheet) -> Path | None:
    """A contact sheet's path (or None): a PNG that can be written."""
    if sheet is None:
        return None
    if Path(sheet).suffix.lower() != ".png":
        raise InputError(f"--sheet writes a PNG image: give a path ending in .png, got {str(sheet)!r}")
    return check_output(sheet, frames=1)
