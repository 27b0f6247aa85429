"""Peak memory of generation by output size, and of reading a hostile file: what kinema/limits.py
is based on. Each case runs in a fresh process (peak RSS is per process) with the shipped model.

    python benchmarks/limits.py --json docs/limits.json            # ~3 min on 2 cores
    python benchmarks/limits.py --quick                            # the small cases only
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

GENERATE = r"""
import json, resource, sys, time
import kinema
frames, height, width, clips = (int(v) for v in sys.argv[1:5])
pipe = kinema.load()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t = time.perf_counter()
pipe.generate(["a red circle moves left"] * clips, frames=frames, height=height, width=width, steps=1, progress=False)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"loaded_mb": round(base), "peak_mb": round(peak), "seconds": round(time.perf_counter() - t, 2)}))
"""

# A small file of huge frames (16 frames of 4096x4096, mostly flat: a few KB as H.264), read the way
# `kinema classify` reads it (fitted to the classifier's input while decoding).
HOSTILE = r"""
import json, resource, sys
import numpy as np
from kinema.video import Video
path = sys.argv[1]
if sys.argv[2] == "write":
    Video(np.zeros((16, 4096, 4096, 3), np.uint8), 8).save(path)
else:
    v = Video.read(path, fps=8.0, height=64, width=64)
    print(json.dumps({"peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), "frames": v.num_frames}))
"""

CASES = [(17, 64, 64, 1), (17, 128, 128, 1), (65, 64, 64, 1), (17, 256, 256, 1), (129, 128, 128, 1),
         (65, 256, 256, 1), (17, 512, 512, 1), (17, 256, 256, 15)]  # the last: 2^24 pixels, the call limit


def run(script: str, *args) -> dict:
    out = subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1]) if out.stdout.strip() else {}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", help="write the figures to this file")
    ap.add_argument("--quick", action="store_true", help="only cases under 2^20 pixels")
    args = ap.parse_args()
    rows = []
    for frames, height, width, clips in CASES:
        pixels = frames * height * width * clips
        if args.quick and pixels > 2**20:
            continue
        r = run(GENERATE, frames, height, width, clips)
        r.update(shape=f"{clips} x {frames}x{height}x{width}", pixels=pixels,
                 bytes_per_pixel=round((r["peak_mb"] - r["loaded_mb"]) * 2**20 / pixels))
        rows.append(r)
        print(f"generate {r['shape']:>20}: peak {r['peak_mb']:6d} MB ({r['loaded_mb']} MB loaded; "
              f"{r['bytes_per_pixel']} B a pixel), {r['seconds']} s", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "huge_frames.mp4"
        run(HOSTILE, path, "write")
        r = run(HOSTILE, path, "read")
        r.update(file_kb=round(path.stat().st_size / 1024))
        print(f"reading a {r['file_kb']} KB mp4 of 16 frames of 4096x4096 fitted to 64x64: peak {r['peak_mb']} MB")
    if args.json:
        Path(args.json).write_text(json.dumps({"generate": rows, "hostile_read": r}, indent=1) + "\n")


if __name__ == "__main__":
    main()
