"""Evaluation. For now a simple, transparent reading of what a clip shows: the colour of its
saturated pixels, the direction their centroid moves, and the shape their outline has. The
evaluation issue brings the video classifier, Fréchet distances and temporal metrics; this
reader is its sanity baseline.
"""

from __future__ import annotations

import colorsys

import numpy as np

from .data.synthetic import COLORS

# compass sectors of 45 degrees, counter-clockwise from +x, with image y pointing down
SECTORS = ("right", "down-right", "down", "down-left", "left", "up-left", "up", "up-right")


def saturated_mask(frames: np.ndarray, threshold: float = 0.45) -> np.ndarray:
    """(T, H, W) True where a pixel is saturated: objects are, the backgrounds are not."""
    f = frames.astype(np.float32) / 255
    return (f.max(-1) - f.min(-1)) > threshold


def nearest_color(rgb: np.ndarray) -> str:
    hue = colorsys.rgb_to_hsv(*(rgb / 255))[0] * 360
    return min(COLORS, key=lambda c: min(abs(hue - COLORS[c]), 360 - abs(hue - COLORS[c])))


def read_shape(mask: np.ndarray) -> str | None:
    """The shape of one upright object from its (H, W) mask: a hole at the centre is a ring;
    otherwise the fraction of its bounding box it fills tells the others apart (star 0.41,
    triangle 0.53, circle 0.79, square 1.0, medians on real frames). None under 12 pixels."""
    ys, xs = np.nonzero(mask)
    if len(ys) < 12:
        return None
    cy, cx = int(round(ys.mean())), int(round(xs.mean()))
    if not mask[cy, cx]:
        return "ring"
    fill = len(ys) / ((ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1))
    return "star" if fill < 0.47 else "triangle" if fill < 0.64 else "circle" if fill < 0.89 else "square"


def read_clip(frames: np.ndarray, min_move: float = 0.06) -> dict:
    """{'color', 'shape', 'direction', 'travel', 'coverage'} of a clip (uint8 (T, H, W, 3)) with
    one main object. travel is the centroid's (dx, dy) from first to last frame in units of the
    frame's shorter side (y down); direction is its compass name (8 sectors), or 'still' under
    `min_move`; shape is the most common per-frame reading (objects that spin are read wrong);
    None where no saturated pixel is found."""
    mask = saturated_mask(frames)
    coverage = float(mask.mean())
    if mask.sum() == 0 or not mask[0].any() or not mask[-1].any():
        return {"color": None, "shape": None, "direction": None, "travel": None, "coverage": coverage}
    color = nearest_color(frames[mask].astype(np.float32).mean(0))
    shapes = [s for s in map(read_shape, mask) if s is not None]
    shape = max(set(shapes), key=shapes.count) if shapes else None
    ys, xs = np.mgrid[: frames.shape[1], : frames.shape[2]]
    cx = [(xs * m).sum() / m.sum() for m in (mask[0], mask[-1])]
    cy = [(ys * m).sum() / m.sum() for m in (mask[0], mask[-1])]
    side = min(frames.shape[1:3])
    dx, dy = (cx[1] - cx[0]) / side, (cy[1] - cy[0]) / side
    travel = (round(float(dx), 4), round(float(dy), 4))
    if np.hypot(dx, dy) < min_move:
        return {"color": color, "shape": shape, "direction": "still", "travel": travel, "coverage": coverage}
    sector = int(round(np.arctan2(dy, dx) / (np.pi / 4))) % 8
    return {"color": color, "shape": shape, "direction": SECTORS[sector], "travel": travel, "coverage": coverage}
