"""How fast kinema generates, and what fewer steps cost in quality: one command, one run.

    python benchmarks/speed.py [--model DIR] [--num 256] [--repeat 5] [--json docs/speed_MACHINE.json] \
        [--markdown docs/BENCHMARKS_MACHINE.md] [--skip-quality] [--skip-compile]

docs/BENCHMARKS.md indexes one page per machine (AVX512-BF16, AVX2).

All figures come from the same run, side by side (this machine is shared and noisy):

1. peak: the best matmul throughput (2048 x 2048) of this machine, now, in the dtype kinema computes
   in here (bf16 where it is fast, `kinema.runtime.bf16_fast`; else fp32): the denominator of MFU.
2. real-time factor (RTF): seconds of video made per second of wall time, end to end (prompt ->
   text encoder -> sampling -> decode -> mp4 written), for one clip at the model's defaults
   (17 frames at 8 fps, 64x64, its default steps and sampler), after one warm-up; the median of
   --repeat runs, with the time split into sampling, decode and writing. Also for a batch of 8
   prompts, and compiled as `Pipeline.compile()` does it (transformer and decoder, inductor with
   frozen weights; the first compiled call, which compiles, is reported apart).
3. model FLOP utilisation (MFU): the transformer's FLOPs per call (counted by
   torch.utils.flop_counter on a real call) x calls, over the seconds spent in the transformer
   during sampling, over the peak of (1).
4. diffusers: a `WanPipeline` with a `WanTransformer3DModel` and an `AutoencoderKLWan` of the same
   width, depth, heads, patch, latent channels and compression as the model (random weights; only
   time matters), same frames, size, guidance and dtype, at the same number of transformer
   evaluations (its Euler steps = kinema's Euler steps), timed in the same run, interleaved.
   Needs `pip install diffusers` (the `bench` extra); skipped with a note when it is missing.
5. quality against steps: `kinema eval` figures (fvd with its floor, adherence with its real
   ceiling) at 4, 8, 16 and 32 steps on --num held-out captions (--skip-quality to leave out).
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from bf16_speed import gflops  # benchmarks/ is on the path when this script runs
from torch.utils.flop_counter import FlopCounterMode

from kinema.pipeline import load
from kinema.runtime import autocast, bf16_fast, compile_for_inference, describe

PROMPT = "a red circle moves to the right"
BATCH_PROMPTS = ["a red circle moves left", "a blue square moves right", "a green triangle moves up",
                 "a yellow star moves down", "a magenta ring bounces", "a cyan square spins",
                 "a large red star grows", "a small blue circle moves down and to the left"]


def compute_dtype(device) -> torch.dtype:
    """What kinema's matmuls run in on `device`: bf16 under autocast where bf16 is fast, else fp32."""
    return torch.bfloat16 if bf16_fast(device) else torch.float32


def matmul_peak(dtype: torch.dtype, repeat: int = 10, n: int = 2048) -> float:
    """Best matmul GFLOP/s of an n x n product in `dtype` on this machine (bf16_speed.py's timing)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    return gflops(lambda: a @ b, 2 * n ** 3, repeat)


class TransformerMeter:
    """Wraps a pipeline's transformer: counts calls and the seconds spent in them (CPU calls are
    synchronous, so wall time is compute time)."""

    def __init__(self, pipe):
        self.pipe, self.model = pipe, pipe.transformer
        self.calls, self.seconds, self.shapes = 0, 0.0, set()
        meter = self

        class Timed:  # stands in for the transformer; meter.model may be swapped for a compiled one
            config = meter.model.config

            def text_context(self, *a, **k):
                return meter.model.text_context(*a, **k)

            def __call__(self, x, *a, **k):
                t = time.perf_counter()
                out = meter.model(x, *a, **k)
                meter.seconds += time.perf_counter() - t
                meter.calls += 1
                meter.shapes.add(tuple(x.shape))
                return out

        pipe.transformer = Timed()

    def reset(self):
        self.calls, self.seconds, self.shapes = 0, 0.0, set()


def flops_per_call(pipe, shape: tuple, model) -> float:
    """FLOPs of one transformer call on latents of `shape` (B, C, T, H, W), as sampling makes it."""
    B = shape[0]
    states, mask = pipe.text_encoder.encode([PROMPT] * B)
    x, t = torch.randn(shape), torch.full((B, shape[2]), 0.5)
    with torch.no_grad(), autocast(pipe.device):
        ctx = model.text_context(states, mask)
        with FlopCounterMode(display=False) as counter:
            model(x, t, ctx)
    return counter.get_total_flops()


def generate_to_mp4(pipe, prompts, folder: Path, **kw) -> dict:
    """One end-to-end run: generate, then write each clip as mp4; seconds per phase."""
    t0 = time.perf_counter()
    decode = {"s": 0.0}
    inner_decode = pipe._decode

    def timed_decode(z, fps):
        t = time.perf_counter()
        out = inner_decode(z, fps)
        decode["s"] += time.perf_counter() - t
        return out

    pipe._decode = timed_decode
    try:
        videos = pipe.generate(prompts, seed=0, progress=False, watermark=False, **kw)
    finally:
        pipe._decode = inner_decode
    t1 = time.perf_counter()
    for i, v in enumerate(videos):
        v.save(folder / f"clip_{i}.mp4")
    t2 = time.perf_counter()
    return {"total": t2 - t0, "generate": t1 - t0, "decode": decode["s"], "write": t2 - t1,
            "video_seconds": sum(v.duration for v in videos)}


def measure_rtf(pipe, meter, prompts, repeat: int, folder: Path, **kw) -> dict:
    generate_to_mp4(pipe, prompts, folder, **kw)  # warm-up
    runs = []
    for _ in range(repeat):
        meter.reset()
        r = generate_to_mp4(pipe, prompts, folder, **kw)
        runs.append({**r, "transformer": meter.seconds, "calls": meter.calls, "shape": sorted(meter.shapes)[0]})
    med = {k: statistics.median(r[k] for r in runs) for k in ("total", "generate", "decode", "write", "transformer")}
    return {"clips": len(prompts), "video_seconds": runs[0]["video_seconds"], "wall_seconds": round(med["total"], 4),
            "rtf": round(runs[0]["video_seconds"] / med["total"], 2),
            "split_seconds": {"transformer": round(med["transformer"], 4),
                              "other_sampling": round(med["generate"] - med["transformer"] - med["decode"], 4),
                              "decode": round(med["decode"], 4), "write_mp4": round(med["write"], 4)},
            "transformer_calls": runs[0]["calls"], "latent_shape": list(runs[0]["shape"]),
            "all_wall_seconds": [round(r["total"], 4) for r in runs]}


def add_mfu(row: dict, flops: float, peak_gflops: float) -> dict:
    achieved = flops * row["transformer_calls"] / row["split_seconds"]["transformer"] / 1e9
    return {**row, "transformer_gflop_per_call": round(flops / 1e9, 3), "transformer_gflops": round(achieved, 1),
            "mfu": round(achieved / peak_gflops, 3)}


# ------------------------------------------------------------------ diffusers
def wan_pipeline(pipe):
    """A diffusers WanPipeline shaped like `pipe`'s model (random weights) in the dtype kinema computes
    in here, or None."""
    try:
        from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanPipeline, WanTransformer3DModel
    except ImportError:
        return None
    tc, ac = pipe.transformer.config, pipe.autoencoder.config
    torch.manual_seed(0)
    transformer = WanTransformer3DModel(
        patch_size=(1, tc.patch, tc.patch), num_attention_heads=tc.heads, attention_head_dim=tc.dim // tc.heads,
        in_channels=tc.latent_channels, out_channels=tc.latent_channels, text_dim=tc.text_dim,
        freq_dim=tc.freq_dim, ffn_dim=int(tc.dim * tc.mlp_ratio), num_layers=tc.depth)
    vae = AutoencoderKLWan(base_dim=ac.base_channels, z_dim=ac.latent_channels, dim_mult=list(ac.channel_mult),
                           num_res_blocks=2, temperal_downsample=[False, True, True])
    wan = WanPipeline(tokenizer=None, text_encoder=None, vae=vae, transformer=transformer,
                      scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0))
    wan.set_progress_bar_config(disable=True)
    return wan.to(compute_dtype(pipe.device))


def wan_generate(wan, text_states, d: dict, steps: int, guidance: float, folder: Path) -> float:
    """Wall seconds of one WanPipeline run from precomputed text states (as kinema's own text
    encoder gives them) to an mp4 written with kinema's writer."""
    from kinema.video import Video
    t0 = time.perf_counter()
    states, neg = (s.to(wan.transformer.dtype) for s in text_states)
    frames = wan(prompt_embeds=states, negative_prompt_embeds=neg, height=d["height"], width=d["width"],
                 num_frames=d["frames"], num_inference_steps=steps, guidance_scale=guidance, output_type="np").frames
    Video((frames[0] * 255).round().astype("uint8"), d["fps"]).save(folder / "wan.mp4")
    return time.perf_counter() - t0


def compare_diffusers(pipe, meter, repeat: int, folder: Path, steps: int) -> dict:
    wan = wan_pipeline(pipe)
    if wan is None:
        return {"skipped": "diffusers is not installed (pip install -e '.[bench]')"}
    d = pipe.defaults
    params = {"kinema_transformer": sum(p.numel() for p in meter.model.parameters()),
              "kinema_autoencoder": sum(p.numel() for p in pipe.autoencoder.parameters()),
              "diffusers_transformer": sum(p.numel() for p in wan.transformer.parameters()),
              "diffusers_vae": sum(p.numel() for p in wan.vae.parameters())}
    guidance = d["guidance"]
    kw = {"steps": steps, "sampler": "euler", "guidance": guidance}
    text = (pipe.text_encoder.encode([PROMPT])[0], pipe.text_encoder.encode([""])[0])
    generate_to_mp4(pipe, [PROMPT], folder, **kw)  # warm-ups
    wan_generate(wan, text, d, steps, guidance, folder)
    ours, theirs = [], []
    for _ in range(repeat):  # interleaved, so both see the same machine
        ours.append(generate_to_mp4(pipe, [PROMPT], folder, **kw)["total"])
        theirs.append(wan_generate(wan, text, d, steps, guidance, folder))
    k, w = statistics.median(ours), statistics.median(theirs)
    return {"steps": steps, "solver": "euler (kinema) / FlowMatchEulerDiscreteScheduler (diffusers)",
            "guidance": guidance, "frames": d["frames"], "size": f"{d['height']}x{d['width']}",
            "dtype": str(compute_dtype(pipe.device)).split(".")[1],
            "parameters": params, "kinema_seconds": round(k, 4), "diffusers_seconds": round(w, 4),
            "speedup": round(w / k, 2), "all_kinema": [round(x, 4) for x in ours],
            "all_diffusers": [round(x, 4) for x in theirs]}


# ------------------------------------------------------------------ quality
def quality_vs_steps(pipe, num: int, steps_list) -> list[dict]:
    from kinema.eval_suite import evaluate
    from kinema.models.classifier import load_classifier
    classifier = load_classifier()
    rows = []
    for steps in steps_list:
        r = evaluate(pipe, num=num, classifier=classifier, steps=steps, progress=False)
        a, real = r["adherence"], r["adherence_real"]
        rows.append({"steps": steps, "fvd": r["fvd"], "fvd_std": r["fvd_std"], "fvd_floor": r["fvd_floor"],
                     **{k: a[k] for k in ("colors", "shapes", "motions")},
                     **{f"{k}_real": real[k] for k in ("colors", "shapes", "motions")},
                     "generate_seconds": r["seconds"]["generate"]})
        print(f"  steps {steps:2d}: fvd {r['fvd']:.1f} (floor {r['fvd_floor']:.1f}), colours {a['colors']:.2f}, "
              f"shapes {a['shapes']:.2f}, motions {a['motions']:.2f}", file=sys.stderr)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per figure (the median is kept)")
    ap.add_argument("--num", type=int, default=256, help="held-out captions per step count for quality")
    ap.add_argument("--steps", default="4,8,16,32", help="step counts for quality (comma-separated)")
    ap.add_argument("--skip-quality", action="store_true", help="timings only")
    ap.add_argument("--skip-compile", action="store_true", help="leave out the torch.compile figures")
    ap.add_argument("--json", default=None, help="write every figure to this file")
    ap.add_argument("--markdown", default=None,
                    help="write the figures as a Markdown page (docs/BENCHMARKS_MACHINE.md)")
    args = ap.parse_args()

    pipe = load(args.model)
    meter = TransformerMeter(pipe)
    d = pipe.defaults
    result = {"date": time.strftime("%Y-%m-%d"), "machine": describe(), "torch": torch.__version__,
              "model": args.model or "shipped default", "defaults": d}
    dtype = compute_dtype(pipe.device)
    result["compute_dtype"] = str(dtype).split(".")[1]
    result["matmul_peak_gflops"] = round(matmul_peak(dtype), 1)
    print(f"{result['compute_dtype']} matmul peak: {result['matmul_peak_gflops']} GFLOP/s", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rows = {}
        for name, prompts in (("one clip", [PROMPT]), ("batch of 8", BATCH_PROMPTS)):
            row = measure_rtf(pipe, meter, prompts, args.repeat, folder)
            rows[name] = add_mfu(row, flops_per_call(pipe, tuple(row["latent_shape"]), meter.model),
                                 result["matmul_peak_gflops"])
            print(f"{name}: RTF {rows[name]['rtf']}, {rows[name]['wall_seconds']} s, MFU {rows[name]['mfu']:.0%}",
                  file=sys.stderr)
        if not args.skip_compile:
            eager, eager_ae = meter.model, pipe.autoencoder
            meter.model = compile_for_inference(eager)  # what Pipeline.compile() does
            pipe.autoencoder = compile_for_inference(eager_ae, "decode")
            t = generate_to_mp4(pipe, [PROMPT], folder)["total"]  # the first call compiles
            for name, prompts in (("one clip, compiled", [PROMPT]), ("batch of 8, compiled", BATCH_PROMPTS)):
                row = measure_rtf(pipe, meter, prompts, args.repeat, folder)
                rows[name] = add_mfu(row, flops_per_call(pipe, tuple(row["latent_shape"]), eager),
                                     result["matmul_peak_gflops"])
                print(f"{name}: RTF {rows[name]['rtf']}, MFU {rows[name]['mfu']:.0%}", file=sys.stderr)
            rows["one clip, compiled"]["first_call_seconds"] = round(t, 2)
            meter.model, pipe.autoencoder = eager, eager_ae
        result["generation"] = rows
        result["diffusers"] = compare_diffusers(pipe, meter, args.repeat, folder, steps=d["steps"])
        print(f"diffusers: {result['diffusers']}", file=sys.stderr)
    if not args.skip_quality:
        pipe.transformer = meter.model
        result["quality_vs_steps"] = quality_vs_steps(pipe, args.num, [int(s) for s in args.steps.split(",")])
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(markdown(result, " ".join(["python benchmarks/speed.py", *sys.argv[1:]])))


def markdown(r: dict, command: str) -> str:
    """The figures as a Markdown page (docs/BENCHMARKS_avx2.md is one)."""
    m, d = r["machine"], r["defaults"]
    out = [f"# Generation speed ({r['date']})", "",
           f"`{command}` on {m['device_name']} ({m['cpu_count']} cores, {m['threads']} threads, "
           f"{m['cpu_capability']}, bf16 {m['bf16']}), torch {r['torch']}; model: {r['model']} "
           f"({d['frames']} frames at {d['fps']:g} fps, {d['height']}x{d['width']}, {d['steps']} steps, guidance "
           f"{d['guidance']:g}). All figures from this one run; {r.get('compute_dtype', 'bfloat16')} matmul peak "
           f"(what kinema computes in here) measured in it: **{r['matmul_peak_gflops']:.0f} GFLOP/s**.", "",
           "| case | wall s | RTF (video s / wall s) | transformer / other sampling / decode / mp4 s | "
           "transformer calls | GFLOP/s | MFU |", "|---|---|---|---|---|---|---|"]
    for name, g in r["generation"].items():
        sp = g["split_seconds"]
        first = f" (first call {g['first_call_seconds']} s, compiling)" if "first_call_seconds" in g else ""
        out.append(f"| {name}{first} | {g['wall_seconds']:.3f} | **{g['rtf']:.2f}** | {sp['transformer']:.3f} / "
                   f"{sp['other_sampling']:.3f} / {sp['decode']:.3f} / {sp['write_mp4']:.3f} | "
                   f"{g['transformer_calls']} x {g['transformer_gflop_per_call']:.2f} GFLOP | "
                   f"{g['transformer_gflops']:.0f} | **{g['mfu']:.0%}** |")
    w = r["diffusers"]
    out += ["", "## Against diffusers", ""]
    if "skipped" in w:
        out.append(f"Skipped: {w['skipped']}.")
    else:
        p = w["parameters"]
        out += [f"A diffusers `WanPipeline` (`WanTransformer3DModel` {p['diffusers_transformer'] / 1e6:.1f}M "
                f"parameters, `AutoencoderKLWan` {p['diffusers_vae'] / 1e6:.1f}M) with kinema's width, depth, heads, "
                f"patch and latent size (kinema: transformer {p['kinema_transformer'] / 1e6:.1f}M, autoencoder "
                f"{p['kinema_autoencoder'] / 1e6:.1f}M), random weights, {w['frames']} frames {w['size']}, "
                f"{w['steps']} Euler steps each (the same number of transformer evaluations), guidance "
                f"{w['guidance']:g}, {w['dtype']}, prompt to mp4, timed interleaved in the same run:", "",
                "| | median wall s | runs |", "|---|---|---|",
                f"| kinema | {w['kinema_seconds']:.3f} | {', '.join(map(str, w['all_kinema']))} |",
                f"| diffusers | {w['diffusers_seconds']:.3f} | {', '.join(map(str, w['all_diffusers']))} |", "",
                f"kinema is **{w['speedup']:.2f}x** faster."]
    if "quality_vs_steps" in r:
        out += ["", "## Quality against steps", "",
                "`kinema eval` figures on held-out captions (Heun steps; a Heun step is two transformer "
                "calls but the last): fvd against its floor (two real sets), adherence against the "
                "real clips' ceiling.", "",
                "| steps | fvd (floor) | colours | shapes | motions | generation s |", "|---|---|---|---|---|---|"]
        for q in r["quality_vs_steps"]:
            out.append(f"| {q['steps']} | {q['fvd']:.1f} +- {q['fvd_std']:.1f} ({q['fvd_floor']:.1f}) | "
                       f"{q['colors']:.2f} / {q['colors_real']:.2f} | {q['shapes']:.2f} / {q['shapes_real']:.2f} | "
                       f"{q['motions']:.2f} / {q['motions_real']:.2f} | {q['generate_seconds']:.0f} |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
