"""How fast the procedural dataset renders clips on one core.

    python benchmarks/dataset_speed.py [--seconds 3] [--repeats 3]

The foundation issue's bar: at least 200 clips per second of 17 frames at 64x64 on one core.
Each configuration renders consecutive training clips for about `--seconds`, `--repeats` times;
the median rate is reported (the machine is shared, so the spread is printed too).
"""

import argparse
import json
import os
import platform
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from kinema.data.synthetic import SyntheticClips  # noqa: E402
from kinema.runtime import cpu_name  # noqa: E402

CONFIGS = [(17, 64, 64), (33, 64, 64), (17, 48, 80), (17, 128, 128)]


def rate(clips: SyntheticClips, seconds: float, start: int) -> float:
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        clips[start + n]
        n += 1
    return n / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.0, help="seconds per measurement")
    ap.add_argument("--repeats", type=int, default=3, help="measurements per configuration")
    args = ap.parse_args()
    torch.set_num_threads(1)
    results = []
    for frames, h, w in CONFIGS:
        clips = SyntheticClips("train", seed=0, frames=frames, height=h, width=w)
        rates = [rate(clips, args.seconds, start=10_000 * r) for r in range(args.repeats)]
        results.append({"frames": frames, "height": h, "width": w, "clips_per_s": round(statistics.median(rates), 1),
                        "min": round(min(rates), 1), "max": round(max(rates), 1)})
        print(f"{frames:3d} frames {h}x{w}: {results[-1]['clips_per_s']:7.1f} clips/s "
              f"(min {results[-1]['min']}, max {results[-1]['max']})", flush=True)
    print(json.dumps({"benchmark": "dataset_speed", "date": time.strftime("%Y-%m-%d"), "cpu": cpu_name(),
                      "cores_used": 1, "python": platform.python_version(), "results": results}))


if __name__ == "__main__":
    main()
