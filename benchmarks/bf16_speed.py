"""fp32 against bf16 on this machine, side by side in one run: the numbers behind kinema's
choice of bf16 autocast (`kinema.runtime.bf16_fast`) and its figures as a fraction of peak.

    python benchmarks/bf16_speed.py [--repeat 10]

Times a 1024x1024 matmul, a 3x3 conv2d (36 frames of 64 channels, 32x32) and a 3x3x3 conv3d
(4 clips, 64 channels, 11x32x32), each in fp32 and bf16, contiguous and channels-last, and
prints GFLOP/s. The best bf16 matmul figure is the machine's matmul peak.
"""

import argparse
import json
import time

import torch


def gflops(fn, flops: float, repeat: int) -> float:
    fn()  # warm up (oneDNN picks its kernels on the first call)
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return round(flops / best / 1e9, 1)


@torch.no_grad()
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=10, help="timed calls per case (the best is kept)")
    args = ap.parse_args()
    torch.manual_seed(0)
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    x2, conv2 = torch.randn(36, 64, 32, 32), torch.nn.Conv2d(64, 64, 3, padding=1)
    x3, conv3 = torch.randn(4, 64, 11, 32, 32), torch.nn.Conv3d(64, 64, 3, padding=(0, 1, 1))
    cases = {  # name: (make a timed call for (dtype, channels-last), FLOPs of one call)
        "matmul 1024": (lambda dt, cl: _matmul(a, b, dt), 2 * 1024 ** 3),
        "conv2d 3x3": (lambda dt, cl: _conv(conv2, x2, dt, torch.channels_last if cl else None),
                       2 * 36 * 64 * 64 * 9 * 32 * 32),
        "conv3d 3x3x3": (lambda dt, cl: _conv(conv3, x3, dt, torch.channels_last_3d if cl else None),
                         2 * 4 * 9 * 64 * 64 * 27 * 32 * 32),
    }
    result = {"threads": torch.get_num_threads(), "gflops": {}}
    for name, (make, flops) in cases.items():
        for cl in ([False] if name.startswith("matmul") else [False, True]):
            for dt in (torch.float32, torch.bfloat16):
                key = f"{name}{' channels-last' if cl else ''} {str(dt).split('.')[1]}"
                result["gflops"][key] = gflops(make(dt, cl), flops, args.repeat)
                print(f"{key:40s} {result['gflops'][key]:8.1f} GFLOP/s")
    g = result["gflops"]
    result["matmul_peak_gflops"] = max(g["matmul 1024 bfloat16"], g["matmul 1024 float32"])
    print(json.dumps(result))


def _matmul(a, b, dt):
    a, b = a.to(dt), b.to(dt)
    return lambda: a @ b


def _conv(conv, x, dt, memory_format):
    conv, x = conv.to(dt), x.to(dt)
    if memory_format is not None:
        conv, x = conv.to(memory_format=memory_format), x.contiguous(memory_format=memory_format)
    return lambda: conv(x)


if __name__ == "__main__":
    main()
