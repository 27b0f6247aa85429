"""An invisible watermark in the pixels of every generated frame, found again after re-encoding,
resizing, cropping, colour changes, frame-rate changes and trimming.

The mark lives in what survives those: the mean brightness of a GRID x GRID grid of cells laid
over the frame (cells scale with the frame, so resizing keeps them), after a local high-pass
over neighbouring cells (which removes most of the picture's own large shapes). A keyed
orthonormal set of BITS directions in that GRID^2-dimensional space carries the bits: SYNC known
bits (how a mark is recognised), the payload, 32 bits (the model's id and a serial), and a
24-bit CRC of it (a 16-bit one let 2 wrong payloads through in 1,728 attacked reads). A bit is
the sign of the frame's projection on its direction.

Embedding is informed (it knows the frame): each frame's projections are pushed, by the least
change, to the right sign with a margin MARGIN, so the picture itself never reads as a wrong bit
and every frame carries the whole mark alone: an average of any frames (a trimmed clip, dropped
or repeated frames) keeps the signs. The change is spread smoothly over each cell and added to
the three channels alike (brightness only, no colour).

Detection averages the frames, then tries the crops and rescalings a re-upload may have made
(HYPOTHESES: the grid's scale and offset). The payload decodes when its hard bits, or (Chase
decoding, the error correction) the same with some of the CHASE least reliable bits flipped, pass
the CRC. A mark is reported when the SYNC bits agree with at most SYNC_ERRORS errors (the payload
then given if it decodes, else only a guess), or with at most CHECKED_ERRORS errors and a payload
that decodes. For a video without the mark the bits are fair coins, so the chance of a false
detection is the binomial tails of those two tests (the second times the CRC's chance of passing
one of the 2^CHASE candidates), over every hypothesis tried (`false_positive_rate`): below 1e-6 by
construction. A payload that failed its CRC is never reported as the payload.
"""

from __future__ import annotations

import binascii
import hashlib
import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

GRID = 16  # cells a side
SYNC = 34  # known bits: a mark is recognised by them
PAYLOAD = 32  # model id (16 bits) + serial (16 bits)
CHECK = 24  # the low 24 bits of the CRC-32 of the payload's 4 bytes
CHASE = 6  # the least reliable payload + check bits whose 2^CHASE flips are tried against the CRC
BITS = SYNC + PAYLOAD + CHECK
MARGIN = 3.0  # each projection's distance past zero, in luma levels x cells (unit-norm directions)
SYNC_ERRORS = 1  # sync bits that may be wrong in a detection
CHECKED_ERRORS = 3  # ... in a detection whose payload passed its CRC
WINDOW = 8  # frames: every run of this many consecutive frames (and the whole clip) carries the mark
KEY = b"kinema-watermark-v2"  # v2: sync 34 + payload 32 + CRC 24
SCALES = (1.0, 0.95, 0.9, 0.85)  # the visible part of the grid after a crop (1: none)
STEPS = 6  # offsets tried per axis for each scale, across the cropped-away margin


def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(int.from_bytes(hashlib.sha256(KEY + name.encode()).digest()[:8], "little"))


@lru_cache(maxsize=None)
def highpass() -> np.ndarray:
    """The cell grid's local high-pass, (GRID^2, GRID^2): a cell minus the mean of its 3x3 neighbourhood."""
    n = GRID * GRID
    h = np.eye(n)
    for i in range(GRID):
        for j in range(GRID):
            near = [(a, b) for a in range(i - 1, i + 2) for b in range(j - 1, j + 2) if 0 <= a < GRID and 0 <= b < GRID]
            for a, b in near:
                h[i * GRID + j, a * GRID + b] -= 1.0 / len(near)
    return h


@lru_cache(maxsize=None)
def directions() -> tuple[np.ndarray, np.ndarray]:
    """(P, M): BITS orthonormal directions in the high-pass's range (GRID^2, BITS), and M = P' H P,
    how a change along them shows after the detector's high-pass."""
    h = highpass()
    p, _ = np.linalg.qr(h @ _rng("directions").standard_normal((GRID * GRID, BITS)))
    return p, p.T @ h @ p


@lru_cache(maxsize=None)
def sync_bits() -> np.ndarray:
    return _rng("sync").integers(0, 2, SYNC)


def _crc(payload: int) -> int:
    return binascii.crc32(int(payload).to_bytes(4, "little")) & (2 ** CHECK - 1)


def _bits(value: int, n: int) -> np.ndarray:
    return np.array([(int(value) >> i) & 1 for i in range(n)])


def payload_bits(payload: int) -> np.ndarray:
    """The BITS bits a mark carries: sync, payload, CRC."""
    if not 0 <= int(payload) < 2 ** PAYLOAD:
        raise ValueError(f"a watermark payload is {PAYLOAD} bits, got {payload}")
    return np.concatenate([sync_bits(), _bits(payload, PAYLOAD), _bits(_crc(payload), CHECK)])


def decode_payload(soft: torch.Tensor) -> int | None:
    """The payload from the soft values of its PAYLOAD + CHECK bits (> 0: a one), or None when no
    candidate passes the CRC: the hard decision, then the 2^CHASE - 1 others that flip any of the
    CHASE least reliable bits, likeliest (least flipped confidence) first."""
    soft = soft.double()
    weak = torch.argsort(soft.abs())[:CHASE]
    flips = torch.tensor([[(k >> j) & 1 for j in range(CHASE)] for k in range(2 ** CHASE)], dtype=torch.bool)
    cost = (flips.double() * soft.abs()[weak]).sum(1)
    hard = soft > 0
    for k in torch.argsort(cost).tolist():
        bits = hard.clone()
        bits[weak[flips[k]]] ^= True
        value = sum(int(b) << i for i, b in enumerate(bits[:PAYLOAD].tolist()))
        check = sum(int(b) << i for i, b in enumerate(bits[PAYLOAD:].tolist()))
        if _crc(value) == check:
            return value
    return None


def _luma(frames: torch.Tensor) -> torch.Tensor:
    """(T, H, W) luma of uint8 (T, H, W, 3) frames, float."""
    return frames.float() @ torch.tensor([0.299, 0.587, 0.114])


def _cells(luma: torch.Tensor, box=(0.0, 0.0, 1.0, 1.0)) -> torch.Tensor:
    """(T, GRID^2) mean luma of the GRID x GRID cells over `box` (top, left, height, width as
    fractions of the frame) of (T, H, W) frames (bilinear sampling, then means)."""
    T, H, W = luma.shape
    k = max(1, min(H, W) // GRID)
    top, left, bh, bw = box
    ys = (top + (torch.arange(GRID * k) + 0.5) / (GRID * k) * bh) * 2 - 1
    xs = (left + (torch.arange(GRID * k) + 0.5) / (GRID * k) * bw) * 2 - 1
    grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij")[::-1], -1)[None].expand(T, -1, -1, -1)
    sampled = F.grid_sample(luma[:, None], grid.float(), mode="bilinear", padding_mode="border", align_corners=False)
    return F.avg_pool2d(sampled, k).reshape(T, GRID * GRID)


def embed(frames: np.ndarray, payload: int, margin: float = MARGIN) -> np.ndarray:
    """uint8 (T, H, W, 3) frames carrying `payload` (a 32-bit number): the same change in every
    frame, enough that the whole clip and every WINDOW consecutive frames read it."""
    if frames.shape[1] < GRID or frames.shape[2] < GRID:
        return frames
    p, m = directions()
    s = torch.from_numpy(payload_bits(payload) * 2.0 - 1)
    x = torch.from_numpy(frames)
    T, H, W, _ = frames.shape
    pt, ht = torch.from_numpy(p), torch.from_numpy(highpass())
    mt = torch.from_numpy(m)
    out = x.float()
    w = min(WINDOW, T)
    windows = torch.stack([torch.ones(T)] + [(torch.arange(T) >= a) & (torch.arange(T) < a + w)
                                             for a in range(0, T - w + 1, max(1, w // 2))]).double()
    windows = windows / windows.sum(1, keepdim=True)  # (windows, T): averaging weights
    for _ in range(4):  # the change is smoothed and rounded: push again where a margin fell short
        c = windows @ ((_cells(_luma(out.clamp(0, 255).round())).double() @ ht.T) @ pt)  # (windows, BITS)
        short = (margin - s * c).clamp(min=0).amax(0)  # each bit's worst window, short of its margin
        if float(short.max()) < 0.05 * margin:
            break
        delta = torch.linalg.solve(mt, s * short * 1.1)  # (BITS,) along the directions
        change = (pt @ delta).reshape(1, 1, GRID, GRID).float()  # per-cell luma change, the same every frame
        field = _spread(change, H, W)
        out = out + field[None, :, :, None]
    return out.clamp(0, 255).round().to(torch.uint8).numpy()


SPREAD = "bicubic"  # smooth: no block edges to see (docs/PROVENANCE.md compares)


def _spread(change: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """A (1, 1, GRID, GRID) per-cell change as an (H, W) field."""
    if SPREAD == "bicubic":
        return F.interpolate(change, size=(H, W), mode="bicubic", align_corners=False)[0, 0]
    field = F.interpolate(change, size=(H, W), mode="nearest")
    if SPREAD == "soft":  # cell-constant, edges softened by a 3x3 box
        field = F.avg_pool2d(F.pad(field, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    return field[0, 0]


def _boxes() -> list[tuple[float, float, float, float]]:
    """Where the original frame's grid may lie in a cropped frame: (top, left, height, width) of
    the original's extent, in the cropped frame's fractions."""
    boxes = []
    for sy in SCALES:
        for sx in SCALES:
            if abs(sy - sx) > 0.051:  # crops keep roughly the aspect
                continue
            for oy in np.linspace(0, 1 - sy, STEPS if sy < 1 else 1):
                for ox in np.linspace(0, 1 - sx, STEPS if sx < 1 else 1):
                    # the cropped frame shows [oy, oy + sy] of the original: the original spans
                    # [-oy / sy, (1 - oy) / sy] of the cropped frame
                    boxes.append((-oy / sy, -ox / sx, 1 / sy, 1 / sx))
    return boxes


def _tail(errors: int, checked: bool = False) -> float:
    """The chance that fair coins agree with the sync up to `errors` errors (and, `checked`, that
    a payload of fair coins passes the CRC in one of the 2^CHASE candidates tried)."""
    sync = sum(math.comb(SYNC, k) for k in range(errors + 1)) / 2 ** SYNC
    return sync * 2 ** CHASE / 2 ** CHECK if checked else sync


def false_positive_rate() -> float:
    """The chance an unmarked video is detected, over both tests and every hypothesis tried (a
    union bound)."""
    return (_tail(SYNC_ERRORS) + _tail(CHECKED_ERRORS, checked=True)) * len(_boxes())


def detect(frames: np.ndarray) -> dict:
    """{"detected", "payload", "sync_errors", "p_value", "bit_confidence", "box"} for uint8 (T, H, W, 3)."""
    if frames.shape[1] < GRID or frames.shape[2] < GRID:
        return {"detected": False, "payload": None, "payload_verified": False, "payload_guess": None, "sync_errors": None,
                "p_value": 1.0, "bit_confidence": None, "box": None, "reason": "frames smaller than the grid"}
    p, _ = directions()
    luma = _luma(torch.from_numpy(np.ascontiguousarray(frames))).mean(0, keepdim=True)  # cells are linear
    boxes = _boxes()
    cells = torch.cat([_cells(luma, b) for b in boxes]).double()  # (hypotheses, GRID^2)
    c = (cells @ torch.from_numpy(highpass()).T) @ torch.from_numpy(p)  # (hypotheses, BITS)
    sync = torch.from_numpy(sync_bits() * 2.0 - 1)
    errors = (torch.sign(c[:, :SYNC]) != sync).sum(1)
    order = torch.argsort(errors * 1e6 - (c[:, :SYNC] * sync).sum(1)).tolist()  # likeliest hypotheses first
    found = None
    for h in order:
        if int(errors[h]) > CHECKED_ERRORS:
            break
        payload = decode_payload(c[h, SYNC:])
        if payload is not None:
            found = (h, payload)
            break
    best = found[0] if found else order[0]
    soft = c[best, SYNC:SYNC + PAYLOAD]
    e = int(errors[best])
    detected = found is not None or e <= SYNC_ERRORS
    p = _tail(e, checked=True) if found is not None and e > SYNC_ERRORS else _tail(e)
    return {"detected": detected, "payload": found[1] if found else None, "payload_verified": found is not None,
            "payload_guess": sum(int(b > 0) << i for i, b in enumerate(soft.tolist())),
            "sync_errors": e, "p_value": min(1.0, p * len(boxes)),
            "bit_confidence": round(float(soft.abs().mean() / (c[best, :SYNC].abs().mean() + 1e-9)), 3),
            "box": [round(v, 3) for v in boxes[best]]}
