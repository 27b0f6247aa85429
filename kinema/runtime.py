"""Where kinema runs: device, threads and bf16 support, for `kinema info` and for autocast."""

from __future__ import annotations

import functools
import os
import platform

import torch


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@functools.lru_cache(maxsize=None)
def cpu_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def bf16_fast(device: torch.device | str) -> bool:
    """Whether bf16 matmuls run faster than fp32 here: CUDA with bf16, or a CPU with
    AVX512-BF16 or AMX. On a plain AVX2 CPU, bf16 matmul is emulated and far slower."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())
    return False


def autocast(device: torch.device | str):
    """bf16 autocast where it is fast here (see bf16_fast), else a context that changes nothing."""
    device = torch.device(device)
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16_fast(device))


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe() -> dict:
    """Facts about this machine, as `kinema info` prints them."""
    dev = default_device()
    return {
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else cpu_name(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "bf16": bf16_fast(dev),
    }


def peak_memory_mb(device: torch.device | str = "cpu") -> float:
    """Peak memory of this process so far, MiB: the accelerator's allocations on CUDA, else the
    resident set size (Linux `ru_maxrss`)."""
    if torch.device(device).type == "cuda":
        return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    import resource
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
