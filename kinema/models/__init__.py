"""The networks. Shared here: the range checks of their config dataclasses. (A config's size is
counted without allocating by `kinema.checkpoint.count_params`, before a module is built.)"""

from __future__ import annotations

import math

from ..errors import InputError


# ------------------------------------------------------------------ config field checks
# Configs come from JSON (config.json) and `--set model.KEY=VALUE`: a value of the wrong type is
# refused with the valid range, never coerced (True is not 1, "yes" is not True, 2.0 is not 2).

def whole(owner: str, name: str, value, lo: int, hi: int) -> int:
    """An int (not a bool) in [lo, hi]."""
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise InputError(f"{owner} {name} must be a whole number between {lo} and {hi}, got {value!r}")
    return value


def real(owner: str, name: str, value, lo: float, hi: float, *, open_lo: bool = False) -> float:
    """A finite number (int or float, not a bool) in [lo, hi], or (lo, hi] with open_lo."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not (lo < value if open_lo else lo <= value) or value > hi:
        interval = f"{'(' if open_lo else '['}{lo:g}, {hi:g}]"
        raise InputError(f"{owner} {name} must be a finite number in {interval}, got {value!r}")
    return float(value)


def flag(owner: str, name: str, value) -> bool:
    if not isinstance(value, bool):
        raise InputError(f"{owner} {name} must be true or false, got {value!r}")
    return value


def one_of(owner: str, name: str, value, choices) -> object:
    if isinstance(value, bool) or value not in choices:
        raise InputError(f"{owner} {name} must be one of {', '.join(map(str, choices))}, got {value!r}")
    return value


def whole_list(owner: str, name: str, value, lo: int, hi: int, lengths: range) -> list:
    """A list (or tuple) of `lengths` ints, each in [lo, hi]."""
    if not isinstance(value, (list, tuple)) or len(value) not in lengths:
        n = f"{lengths.start}" if len(lengths) == 1 else f"{lengths.start} to {lengths.stop - 1}"
        raise InputError(f"{owner} {name} must be a list of {n} whole numbers between {lo} and {hi}, got {value!r}")
    for v in value:
        whole(owner, f"{name} entry", v, lo, hi)
    return list(value)
