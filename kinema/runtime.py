"""Where kinema runs: device, threads and bf16 support, for `kinema info`, autocast, and
compiled inference (FrozenCompiled)."""

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
    AVX512-BF16 or AMX. On a plain AVX2 CPU, bf16 matmul is emulated and far slower.
    KINEMA_BF16=1 (or 0) overrides the answer: to run the bf16 code paths (and their
    rounding) on a machine without fast bf16, e.g. the test suite, or to keep fp32 on one."""
    forced = os.environ.get("KINEMA_BF16", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
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


class FrozenCompiled(torch.nn.Module):
    """`module` with one method (`forward`, or e.g. an autoencoder's `decode`) compiled by inductor
    with *freezing*: under no_grad its weights are constants of the compiled code, so their bf16
    casts are folded away and the matmuls and convolutions get prepacked oneDNN weights (a one-clip
    transformer call of the default model: 7.4 -> 6.0 ms against plain torch.compile; a batch of 8
    decoded: 485 -> 187 ms against eager). Dynamo reads the freezing flag while it traces, which
    happens at a call, so each call sets it (a `torch.compile` option does not reach it). Everything
    else (config, text_context, encode) is the module's own, uncompiled."""

    def __init__(self, module: torch.nn.Module, method: str = "forward"):
        super().__init__()
        self.module, self.method = module, method
        self.compiled = torch.compile(getattr(module, method), dynamic=False)

    def _call(self, *args, **kwargs):
        import torch._inductor.config as inductor
        with inductor.patch(freezing=True):
            return self.compiled(*args, **kwargs)

    def forward(self, *args, **kwargs):
        return self._call(*args, **kwargs) if self.method == "forward" else self.module(*args, **kwargs)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            pass
        return self._call if name == self.__dict__["method"] else getattr(self.module, name)


def compile_for_inference(module: torch.nn.Module, method: str = "forward") -> torch.nn.Module:
    """`module` with `method` compiled for no-grad calls, weights frozen (see FrozenCompiled)."""
    return FrozenCompiled(module, method)
