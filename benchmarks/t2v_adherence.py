"""Does a text-to-video model follow prompts? A simple, transparent measurement.

    python benchmarks/t2v_adherence.py --model runs/t2v [--seeds 2] [--steps 16] [--grid docs/figures/t2v_grid.png]

For every colour x direction (6 x 8 = 48 prompts, shapes cycling) it generates clips and reads
them with `kinema.evaluate.read_clip` (hue of the saturated pixels, motion of their centroid,
fill of their bounding box for the shape). `travel` is the mean distance the object's centroid
went along the prompted direction, in frame sides (a graded view of direction: 0 = no motion).
The same reader on real clips with the same attributes gives the ceiling. The evaluation issue
replaces this reader with the trained classifier; this stays as its sanity baseline.
Also writes a grid of generated clips for prompts of every colour, shape and motion.
"""

import argparse
import json
import time

import numpy as np

from kinema.data.synthetic import COLORS, DIRECTIONS, MOTIONS, SHAPES, render
from kinema.evaluate import read_clip
from kinema.pipeline import load
from kinema.video import Video
from kinema.viz import contact_sheet


# The prompt set: every colour x direction, shapes cycling; t2v_caption_gap.py uses it too.
CASES = [(c, SHAPES[i % len(SHAPES)], d) for i, (c, d) in enumerate((c, d) for c in COLORS for d in DIRECTIONS)]


def prompt(color: str, shape: str, direction: str) -> str:
    """e.g. "a red circle moves left", "a yellow star moves up and to the right"."""
    return f"a {color} {shape} moves {direction.replace('-', ' and to the ') if '-' in direction else direction}"


def real_scene(color: str, shape: str, direction: str, n: int) -> dict:
    """Attributes of a real clip showing prompt n: one object, fast, static camera, backgrounds cycling."""
    return {"objects": [{"shape": shape, "color": color, "size": "medium", "motion": direction, "speed": "fast"}],
            "num_objects": 1, "camera": "static", "background": ["plain", "gradient", "textured"][n % 3]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="model or run folder")
    ap.add_argument("--seeds", type=int, default=2, help="clips per prompt")
    ap.add_argument("--steps", type=int, default=None, help="sampling steps (default: the model's)")
    ap.add_argument("--guidance", type=float, default=None, help="guidance (default: the model's)")
    ap.add_argument("--guidance-interval", default=None, metavar="LO,HI",
                    help="noise levels t where guidance applies (default: the model's)")
    ap.add_argument("--grid", default=None, help="write a PNG grid of prompts of every colour, shape and motion")
    args = ap.parse_args()
    pipe = load(args.model)
    kw = {"steps": args.steps, "guidance": args.guidance,
          "guidance_interval": tuple(map(float, args.guidance_interval.split(","))) if args.guidance_interval else None}
    cases = CASES
    prompts = [prompt(c, s, d) for c, s, d in cases]
    t0 = time.perf_counter()
    gen, real = ({k: 0 for k in ("color", "shape", "direction", "all", "travel")} for _ in range(2))
    n = 0
    for seed in range(args.seeds):
        videos = pipe.generate(prompts, seed=seed, progress=False, watermark=False, **kw)
        for (c, s, d), v in zip(cases, videos):
            frames = render(real_scene(c, s, d, n), np.random.default_rng(n), v.num_frames, v.height, v.width, v.fps)
            for tally, clip in ((gen, v.frames), (real, frames)):
                r = read_clip(clip)
                tally["color"] += r["color"] == c
                tally["shape"] += r["shape"] == s
                tally["direction"] += r["direction"] == d
                tally["all"] += r["color"] == c and r["shape"] == s and r["direction"] == d
                if r["travel"] is not None:  # how far the object went the prompted way (frame sides)
                    ux, uy = np.array(DIRECTIONS[d]) / np.hypot(*DIRECTIONS[d])
                    tally["travel"] += r["travel"][0] * ux + r["travel"][1] * uy
            n += 1
    result = {"benchmark": "t2v_adherence", "model": args.model, "clips": n, "steps": args.steps or pipe.defaults["steps"],
              "guidance": args.guidance or pipe.defaults["guidance"],
              "guidance_interval": list(kw["guidance_interval"] or pipe.defaults["guidance_interval"]),
              "generated": {k: round(v / n, 3) for k, v in gen.items()},
              "real_ceiling": {k: round(v / n, 3) for k, v in real.items()},
              "chance": {"color": round(1 / len(COLORS), 3), "shape": round(1 / len(SHAPES), 3),
                         "direction": round(1 / len(DIRECTIONS), 3)},
              "seconds": round(time.perf_counter() - t0, 1)}
    print(", ".join(f"{k} {result['generated'][k]:.0%} (real {result['real_ceiling'][k]:.0%})"
                    for k in ("color", "shape", "direction", "all")) + f" over {n} clips; travel along the "
          f"prompted direction {result['generated']['travel']:.2f} frame sides "
          f"(real {result['real_ceiling']['travel']:.2f})")
    print(json.dumps(result))
    if args.grid:
        grid = [grid_prompt(i, m) for i, m in enumerate(MOTIONS)]
        videos = pipe.generate(grid, seed=0, progress=False, watermark=False, **kw)
        Video(contact_sheet(videos, grid)).save(args.grid)
        print(f"wrote {args.grid}")


VERBS = {"bounce": "bounces", "rotate": "spins", "grow": "grows", "shrink": "shrinks", "still": "stays still"}


def grid_prompt(i: int, motion: str) -> str:
    """Prompt i of the grid: colours and shapes cycle, every motion appears once."""
    color = list(COLORS)[i % len(COLORS)]
    shape = "star" if motion == "rotate" else SHAPES[i % len(SHAPES)]  # a spinning circle would not show
    verb = VERBS.get(motion) or f"moves {motion.replace('-', ' and to the ') if '-' in motion else motion}"
    return f"a {color} {shape} {verb}"

if __name__ == "__main__":
    main()
