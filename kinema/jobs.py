"""One job runner for the CLI and the server: a request in, files out.

A request is a plain dict, what `kinema generate ...`'s flags and the server's `POST /v1/videos`
body both become:

    mode        generate | extend | interpolate | edit
    prompt      text (a prompt schedule "0s: ...; 4s: ..." for long videos)
    inputs      {"image", "last_image", "video", "first", "last", "mask": path, "keyframes": {index: path}}
    loras       [[adapter path, scale], ...]
    the call's settings: frames, seconds, height, width, fps, steps, guidance, guidance_interval,
    sampler, seed, strength, fit, context (each mode takes its own; None: the model's default)

`run` checks the request against the model folder's JSON first (in a moment: nothing is loaded,
read or generated for a request that would fail), then reads the inputs fitted to the call's size,
loads the model (or uses the one given: a server keeps one warm), runs the mode and writes the
video, its contact sheet and a thumbnail, each atomically. `run_batch` makes several plain
`generate` requests of one shape as one batch through the transformer (`batch_key` says which
can share one), each clip from its own seed, so a clip does not depend on its batch-mates.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

from .checks import check_mode
from .errors import InputError
from .runtime import peak_memory_mb

SAMPLING = ("steps", "guidance", "guidance_interval", "sampler", "seed")
SETTINGS = {  # what each mode takes besides the prompt, its inputs and SAMPLING
    "generate": ("frames", "height", "width", "fps", "seconds", "fit"),
    "extend": ("frames", "height", "width", "fps", "context", "fit"),
    "interpolate": ("frames", "height", "width", "fps", "fit"),
    "edit": ("height", "width", "fps", "strength", "fit"),
}
INPUTS = {"generate": ("image", "last_image", "keyframes"), "extend": ("video",),
          "interpolate": ("first", "last"), "edit": ("video", "mask")}
REQUIRED = {"generate": (), "extend": ("video",), "interpolate": ("first", "last"), "edit": ("video",)}
SOURCE = {"generate": "image", "extend": "video", "interpolate": "first", "edit": "video"}  # sets the aspect
THUMBNAIL_SIDE = 160


def call_kwargs(request: dict) -> dict:
    """The settings of `request` its mode takes, as keyword arguments of the Pipeline method."""
    mode = check_mode(request.get("mode", "generate"))
    return {k: request[k] for k in SETTINGS[mode] + SAMPLING if request.get(k) is not None}


def plan(request: dict, model=None) -> tuple[dict, dict]:
    """(the call's keyword arguments, its settings) from the model folder's JSON alone; a request
    that would fail fails here. With a source image / video and no size, the size is the model's
    trained size nearest the source's aspect (read from the file's header)."""
    from .checks import source_size
    from .pipeline import model_spec, preflight
    from .video import probe
    mode = check_mode(request.get("mode", "generate"))
    inputs = request.get("inputs") or {}
    unknown = set(inputs) - set(INPUTS[mode])
    if unknown:
        raise InputError(f"{mode} takes the inputs {', '.join(INPUTS[mode]) or 'none'}, "
                         f"not {', '.join(sorted(unknown))}")
    for name in REQUIRED[mode]:
        if not inputs.get(name):
            raise InputError(f"{mode} needs the input {name!r}")
    kwargs = call_kwargs(request)
    source = inputs.get(SOURCE[mode])
    if source and kwargs.get("height") is None and kwargs.get("width") is None:
        hw = probe(source) if Path(source).is_file() else None
        kwargs["height"], kwargs["width"] = source_size(model_spec(model)[0], hw)
    seconds = request.get("seconds") if mode in ("generate", "extend") else None
    if mode == "extend" and seconds is None:
        raise InputError("extend needs seconds: how much video to add")
    s = preflight(model, mode, **{**kwargs, "seconds": seconds})
    return kwargs, s


def read_inputs(request: dict, s: dict) -> tuple[tuple, dict]:
    """The mode's positional and keyword inputs, each read fitted to the call's size (and fps for
    videos), so memory follows the output, not the input file."""
    from .checks import given_frames
    from .video import Video
    mode, inputs = request.get("mode", "generate"), request.get("inputs") or {}
    fit, prompt = request.get("fit") or "crop", request.get("prompt") or ""
    size = {"height": s["height"], "width": s["width"]}
    timed = {**size, "fps": s["fps"]}

    def read(name, **target):
        return Video.read(inputs[name], fit=fit, **target) if inputs.get(name) else None
    if mode == "generate":
        keyframes = {}
        for index, path in (inputs.get("keyframes") or {}).items():
            keyframes[int(index)] = Video.read(path, fit=fit, **size)
        images = {"image": read("image", **size), "last_image": read("last_image", **size), "keyframes": keyframes}
        given_frames(**images, frames=s["frames"])  # (a long video's: in its first window)
        return (prompt,), images
    if mode == "extend":
        return (read("video", **timed), prompt, request["seconds"]), {}
    if mode == "interpolate":
        return (read("first", **size), read("last", **size), prompt), {}
    return (read("video", **timed), prompt), {"mask": read("mask", **timed)}


def caption(request: dict) -> str:
    """What a contact sheet is captioned with."""
    mode, inputs, prompt = request.get("mode", "generate"), request.get("inputs") or {}, request.get("prompt") or ""
    if mode == "extend":
        return f"{Path(inputs['video']).name} extended: {prompt}"
    if mode == "edit":
        return f"{Path(inputs['video']).name} edited: {prompt}"
    if mode == "interpolate":
        return f"{Path(inputs['first']).name} -> {Path(inputs['last']).name}" + (f": {prompt}" if prompt else "")
    return prompt


def check_outputs(outputs: dict, mode: str, s: dict, long: bool) -> None:
    from .checks import check_sheet
    from .video import check_output
    check_output(outputs["video"], frames=None if mode == "edit" else 2 if long else s["frames"], fps=s["fps"])
    check_sheet(outputs.get("sheet"))
    if outputs.get("thumbnail") is not None:
        check_output(outputs["thumbnail"], frames=1)


def use_loras(pipe, loras, keep=()) -> None:
    """Make `loras` [(path, scale), ...] the pipeline's adapters (besides those named in `keep`,
    which came with the model), loading only when they change."""
    from .models.lora import adapter_folder
    want = [(str(adapter_folder(p)), float(sc)) for p, sc in loras]
    have = [(v["path"], v["scale"]) for n, v in pipe.loras.items() if n not in keep]
    if want == have:
        return
    for name in [n for n in pipe.loras if n not in keep]:
        pipe.unload_lora(name)
    for path, scale in loras:
        pipe.load_lora(path, scale)


def write_extras(video, outputs: dict, text: str) -> dict:
    """The contact sheet and thumbnail of a finished video, as `outputs` asks."""
    from .video import Video
    from .viz import contact_sheet
    done = {}
    if outputs.get("sheet") is not None:
        Video(contact_sheet([video], [text], frames=min(video.num_frames, 9))).save(outputs["sheet"])
        done["sheet"] = str(outputs["sheet"])
    if outputs.get("thumbnail") is not None:
        scale = THUMBNAIL_SIDE / max(video.height, video.width)
        h, w = max(8, round(video.height * scale)), max(8, round(video.width * scale))
        Video(video.frames[video.num_frames // 2][None]).resize(h, w, "stretch").save(outputs["thumbnail"])
        done["thumbnail"] = str(outputs["thumbnail"])
    return done


def run(request: dict, outputs: dict, *, model=None, pipe=None, keep_loras=(), on_step: Callable | None = None,
        progress: bool = False, compile: bool = False) -> dict:
    """Run one request and write `outputs` {"video": path, "sheet": png or None, "thumbnail": png
    or None}; returns what was done (`kinema ... --json`): frames, size, seconds of video, wall
    seconds, windows (long videos), the process's peak memory and the out-of-domain reading of
    the inputs. `pipe`: a loaded Pipeline of `model` (the server's warm one); else `model` (None:
    the shipped model) is loaded once the request has passed its checks."""
    from .models.lora import read_adapter
    from .pipeline import load
    from .video import Video
    t0 = time.perf_counter()
    mode = check_mode(request.get("mode", "generate"))
    kwargs, s = plan(request, model)
    check_outputs(outputs, mode, s, long=mode == "extend" or request.get("seconds") is not None)
    loras = [(p, float(sc)) for p, sc in request.get("loras") or []]
    for path, _ in loras:  # readable adapters, before the inputs are read and the model loaded
        read_adapter(path)
    if request.get("manifest", True) is not False:  # the signing files, before anything is made
        from .provenance.c2pa import signing_files
        signing_files(request.get("sign_cert"), request.get("sign_key"))
    positional, given = read_inputs(request, s)
    pipe = pipe if pipe is not None else load(model)
    if compile:
        pipe.compile()
    use_loras(pipe, loras, keep_loras)
    seen = {"windows": 0}

    def step(info):
        seen["windows"] = info["windows"]
        if on_step is not None:
            on_step(info)
    marks = payload(pipe, request, s)
    video = getattr(pipe, mode)(*positional, progress=progress, on_step=step, **given, **kwargs,
                                watermark=marks["watermark"]["payload"] if marks["watermark"] else False)
    sources = {"generate": lambda: [given.get("image"), given.get("last_image"),
                                    *(given.get("keyframes") or {}).values()],
               "interpolate": lambda: list(positional[:2]), "extend": lambda: [positional[0].resample(s["fps"])],
               "edit": lambda: [positional[0].resample(s["fps"])]}[mode]()  # as the mode fits its source
    domain = pipe.given_domain([v for v in sources if isinstance(v, Video)], video.height, video.width,
                               kwargs.get("fit", "crop"), warn=False)
    video.save(outputs["video"])
    extras = write_extras(video, outputs, caption(request))
    marks.update(sign_outputs(pipe, request, outputs, model, marks, s["steps"], s["guidance"]))
    return {"out": str(outputs["video"]), "mode": mode, "frames": video.num_frames, "height": video.height,
            "width": video.width, "fps": video.fps, "video_seconds": round(video.duration, 3),
            "seed": kwargs.get("seed", 0), "steps": kwargs.get("steps") or pipe.defaults["steps"],
            "windows": seen["windows"] if mode == "extend" or kwargs.get("seconds") else 0,
            **extras, "provenance": marks,
            "seconds": round(time.perf_counter() - t0, 3), "peak_memory_mb": peak_memory_mb(pipe.device),
            **(domain or {}), **({"loras": [{"name": k, **v} for k, v in pipe.loras.items()]} if pipe.loras else {})}


def payload(pipe, request: dict, s: dict) -> dict:
    """{"watermark": the payload kinema's invisible watermark carries in this request's output
    (drawn from the request: the same request, the same file), or None with request["watermark"]
    False or an edit of strength 0 (which returns its source)}."""
    if request.get("watermark", True) is False or (request.get("mode") == "edit" and request.get("strength") == 0):
        return {"watermark": None}  # (an edit of strength 0 returns its source: nothing made, nothing marked)
    from .provenance import new_payload
    made = {"prompt": request.get("prompt") or "", "mode": request.get("mode", "generate"),
            "seed": request.get("seed", 0), "strength": request.get("strength"), "seconds": request.get("seconds"),
            **{k: s.get(k) for k in ("frames", "height", "width", "fps", "steps", "guidance", "guidance_interval",
                                     "sampler")}}
    return {"watermark": new_payload(pipe, made)}


def sign_outputs(pipe, request: dict, outputs: dict, model, marks: dict, steps, guidance) -> dict:
    """Signed C2PA manifests on the written files (unless request["manifest"] is False): the model,
    mode, seed, steps, guidance, the watermark's payload, the prompt only with manifest_prompt,
    and the given images and videos as ingredients."""
    if request.get("manifest", True) is False:
        return {"manifest": None}
    from .provenance import model_id, sign
    info = {"model": Path(str(model)).name if model else "default", "weights": model_id(pipe)[0],
            "mode": request.get("mode", "generate"), "seed": request.get("seed", 0), "steps": steps,
            "guidance": guidance,
            **({"watermark_payload": marks["watermark"]["payload"]} if marks.get("watermark") else {}),
            **({"prompt": request.get("prompt", "")} if request.get("manifest_prompt") else {})}
    given = [v for k, v in (request.get("inputs") or {}).items() if k != "keyframes" and v]
    given += list(((request.get("inputs") or {}).get("keyframes") or {}).values())
    signed = sign([outputs.get(k) for k in ("video", "sheet", "thumbnail")], info, given,
                  request.get("sign_cert"), request.get("sign_key"))
    return {"manifest": signed}


def batch_key(request: dict) -> str | None:
    """Requests with the same key can run as one batch (plain `generate` of one shape, no inputs,
    the same sampling and adapters); None for a request that runs alone."""
    if request.get("mode", "generate") != "generate" or request.get("inputs") or request.get("seconds") is not None:
        return None
    same = {k: request.get(k) for k in ("frames", "height", "width", "fps", "steps", "guidance", "guidance_interval",
                                        "sampler", "fit", "loras", "watermark", "manifest")}
    return json.dumps(same, sort_keys=True)


def run_batch(requests: list[dict], outputs: list[dict], *, pipe, model=None, keep_loras=(),
              on_step: Callable | None = None) -> list[dict]:
    """Requests of one `batch_key` as one batch: one transformer call a step for all their clips,
    each clip from its own request's seed. Writes each request's outputs; returns their results.
    `model`: the folder `pipe` was loaded from (its sizes and defaults check the requests)."""
    if len({batch_key(r) for r in requests}) != 1 or batch_key(requests[0]) is None:
        raise InputError("run_batch takes plain generate requests of one shape")
    t0 = time.perf_counter()
    kwargs, s = plan(requests[0], model)
    for request, out in zip(requests, outputs):
        check_outputs(out, "generate", s, long=False)
    use_loras(pipe, [(p, float(sc)) for p, sc in requests[0].get("loras") or []], keep_loras)
    kwargs.pop("seed", None)
    each = [payload(pipe, r, s) for r in requests]
    videos = pipe.generate([r.get("prompt") or "" for r in requests], seed=[int(r.get("seed") or 0) for r in requests],
                           progress=False, on_step=on_step, **kwargs,
                           watermark=[m["watermark"]["payload"] if m["watermark"] else None for m in each])
    seconds = round(time.perf_counter() - t0, 3)
    results = []
    for request, out, video, marks in zip(requests, outputs, videos, each):
        video.save(out["video"])
        extras = write_extras(video, out, caption(request))
        marks.update(sign_outputs(pipe, request, out, model, marks, s["steps"], s["guidance"]))
        results.append({"out": str(out["video"]), "mode": "generate", "frames": video.num_frames,
                        "height": video.height, "width": video.width, "fps": video.fps,
                        "video_seconds": round(video.duration, 3), "seed": int(request.get("seed") or 0),
                        "steps": s["steps"], "windows": 0, "seconds": seconds, "batch": len(requests),
                        "peak_memory_mb": peak_memory_mb(pipe.device), **extras, "provenance": marks})
    return results
