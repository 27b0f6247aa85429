"""Procedural captioned clips with ground-truth attributes: kinema's built-in dataset.

Every clip is a pure function of (seed, split, index): 1-3 anti-aliased objects (shape, colour,
size) that move (11+ motions, two speeds) in front of a plain, gradient or textured background
while the camera holds still, pans or zooms (camera moves over textured backgrounds only, where
they can be seen). A caption is written from many templates and
synonyms, and the attributes are returned alongside for evaluation.

Rendering is vectorised over frames with signed distance fields: pixel centres are mapped to
world coordinates per frame (the camera), each object's SDF is evaluated in its own rotated,
scaled frame, and a one-pixel ramp turns distance into coverage (anti-aliasing, sub-pixel motion).
World units: 1.0 = the frame's shorter side.

Splits: `train` and `heldout` draw from disjoint random streams and never use the colour/shape
pairs in `HELD_OUT_PAIRS`; `compositions` puts one of those pairs in every clip.
"""

from __future__ import annotations

import colorsys
import itertools
import os

import numpy as np
import torch

from ..errors import InputError
from ..limits import MAX_CLIP_FRAMES, MAX_CLIP_PIXELS
from ..video import check_fps, check_size
from .source import Clip

# ------------------------------------------------------------------ vocabulary
SHAPES = ("circle", "square", "triangle", "star", "ring")
COLORS = {"red": 0.0, "yellow": 60.0, "green": 120.0, "cyan": 180.0, "blue": 240.0, "magenta": 300.0}  # hue, degrees
SIZES = {"small": 0.09, "medium": 0.13, "large": 0.18}  # radius, in units of the shorter side
DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1),
              "up-left": (-1, -1), "up-right": (1, -1), "down-left": (-1, 1), "down-right": (1, 1)}
MOTIONS = (*DIRECTIONS, "bounce", "rotate", "grow", "shrink", "still")
SPEEDS = ("slow", "fast")
CAMERAS = ("static", "pan-left", "pan-right", "pan-up", "pan-down", "zoom-in", "zoom-out")
BACKGROUNDS = ("plain", "gradient", "textured")
SPLITS = {"train": 0, "heldout": 1, "compositions": 2}
# Bumped whenever some (seed, split, index) renders differently; caches of encoded clips key on it.
# 2: camera moves only over textured backgrounds.
DATASET_VERSION = 2
# Colour/shape pairs never shown in training: the `compositions` split tests generalisation.
HELD_OUT_PAIRS = frozenset({("red", "star"), ("yellow", "ring"), ("green", "triangle"),
                            ("cyan", "square"), ("blue", "circle"), ("magenta", "triangle")})
ROTATIONALLY_SYMMETRIC = {"circle", "ring"}  # "rotate" would be invisible on these

# Rates per second, per speed.
TRAVEL = {"slow": 0.12, "fast": 0.25}  # translation, shorter sides per second
SPIN = {"slow": np.pi / 2, "fast": np.pi}  # rotation, radians per second
SCALE_RATE = {"slow": np.log(1.25), "fast": np.log(1.6)}  # grow/shrink, log-scale per second
BOUNCE = {"slow": 1.0, "fast": 2.0}  # bounces per second (amplitude 0.15)
PAN_SPEED, ZOOM_RATE = 0.12, np.log(1.3)

# ------------------------------------------------------------------ caption language
COLOR_WORDS = {"red": ["red", "red", "crimson", "scarlet"], "yellow": ["yellow", "yellow", "golden", "lemon"],
               "green": ["green", "green", "emerald", "lime"], "cyan": ["cyan", "cyan", "turquoise", "aqua"],
               "blue": ["blue", "blue", "cobalt", "sapphire"], "magenta": ["magenta", "magenta", "pink", "fuchsia"]}
SHAPE_WORDS = {"circle": ["circle", "circle", "ball", "disc", "dot"], "square": ["square", "square", "box", "block"],
               "triangle": ["triangle"], "star": ["star", "star", "five-pointed star"],
               "ring": ["ring", "ring", "donut", "hoop"]}
SIZE_WORDS = {"small": ["small", "tiny", "little"], "medium": ["medium", "medium-sized", "mid-sized"],
              "large": ["large", "big", "huge"]}
SPEED_WORDS = {"slow": ["slowly", "gently", "leisurely"], "fast": ["quickly", "fast", "rapidly"]}


def _dir_phrases(word: str) -> list[tuple[str, str]]:
    if "-" in word:  # diagonal
        v, h = word.split("-")
        return [(f"moves {v} and to the {h}", f"moving {v} and to the {h}"),
                (f"drifts toward the {'top' if v == 'up' else 'bottom'} {h}",
                 f"drifting toward the {'top' if v == 'up' else 'bottom'} {h}"),
                (f"travels diagonally {word}", f"travelling diagonally {word}")]
    extra = {"left": [("slides leftward", "sliding leftward"), ("drifts to the left", "drifting to the left")],
             "right": [("slides rightward", "sliding rightward"), ("drifts to the right", "drifting to the right")],
             "up": [("rises", "rising"), ("floats upward", "floating upward")],
             "down": [("falls", "falling"), ("sinks downward", "sinking downward")]}[word]
    return [(f"moves {word}", f"moving {word}"), (f"travels {word}", f"travelling {word}"), *extra]


MOTION_PHRASES = {**{d: _dir_phrases(d) for d in DIRECTIONS},
                  "bounce": [("bounces", "bouncing"), ("bounces up and down", "bouncing up and down"), ("hops", "hopping")],
                  "rotate": [("spins", "spinning"), ("rotates", "rotating"), ("turns in place", "turning in place")],
                  "grow": [("grows", "growing"), ("gets bigger", "getting bigger"), ("expands", "expanding")],
                  "shrink": [("shrinks", "shrinking"), ("gets smaller", "getting smaller"), ("contracts", "contracting")],
                  "still": [("stays still", "staying still"), ("sits still", "sitting still"), ("does not move", "not moving")]}
CAMERA_PHRASES = {"static": ["camera still", "static camera", "fixed shot", "the camera does not move"],
                  **{f"pan-{d}": [f"the camera pans {d}", f"camera panning {d}", f"panning {d}"]
                     for d in ("left", "right", "up", "down")},
                  "zoom-in": ["the camera zooms in", "zooming in", "the camera pushes in"],
                  "zoom-out": ["the camera zooms out", "zooming out", "the camera pulls back"]}
BACKGROUND_PHRASES = {"plain": ["plain background", "flat backdrop", "solid background"],
                      "gradient": ["gradient background", "smooth gradient", "colour gradient"],
                      "textured": ["textured background", "patterned backdrop", "textured surface"]}
OBJECT_TEMPLATES = ("{a} {size}{color} {shape} {verb}", "{color} {shape} {ing}", "{a} {size}{shape} in {color} {verb}",
                    "there is {a} {size}{color} {shape} {ing}", "{a} {color} {shape} that {verb}")
JOINERS = (" and ", ", and ", " while ", "; ", ", ")


# ------------------------------------------------------------------ attributes

def _choice(rng, seq):
    return seq[rng.integers(len(seq))]


def sample_attributes(rng: np.random.Generator, split: str = "train") -> dict:
    """Draw a scene: objects (shape, colour, size, motion, speed), camera and background."""
    n = int(rng.choice([1, 2, 3], p=[0.5, 0.3, 0.2]))
    colors = [str(c) for c in rng.permutation(list(COLORS))[:n]]  # distinct colours within a clip
    objects = []
    for k, color in enumerate(colors):
        if split == "compositions" and k == 0:
            color, shape = (str(v) for v in _choice(rng, sorted(HELD_OUT_PAIRS)))
            colors[0] = color
        else:
            allowed = [s for s in SHAPES if split == "compositions" or (color, s) not in HELD_OUT_PAIRS]
            shape = _choice(rng, allowed)
        motions = [m for m in MOTIONS if not (m == "rotate" and shape in ROTATIONALLY_SYMMETRIC)]
        motion = _choice(rng, motions)
        objects.append({"shape": shape, "color": color, "size": _choice(rng, list(SIZES)),
                        "motion": motion, "speed": None if motion == "still" else _choice(rng, SPEEDS)})
    if split == "compositions" and len(set(colors)) < n:  # the held-out colour may repeat another's
        for o in objects[1:]:
            if o["color"] == objects[0]["color"]:
                o["color"] = _choice(rng, [c for c in COLORS if c not in {x["color"] for x in objects}])
    camera = "static" if rng.random() < 0.5 else _choice(rng, CAMERAS[1:])
    # Over a plain background a pan looks exactly like every object moving the other way (and a
    # gradient hides pans along its level lines), so a moving camera always gets a textured one.
    background = _choice(rng, BACKGROUNDS) if camera == "static" else "textured"
    return {"objects": objects, "num_objects": n, "camera": camera, "background": background}


def write_caption(rng: np.random.Generator, attrs: dict) -> str:
    """Describe a scene in one of many phrasings (templates x synonyms x optional details)."""
    parts = []
    for o in attrs["objects"]:
        verb, ing = _choice(rng, MOTION_PHRASES[o["motion"]])
        if o["speed"] and rng.random() < 0.7:
            adv = _choice(rng, SPEED_WORDS[o["speed"]])
            verb, ing = (f"{adv} {verb}", f"{adv} {ing}") if rng.random() < 0.4 else (f"{verb} {adv}", f"{ing} {adv}")
        size = f"{_choice(rng, SIZE_WORDS[o['size']])} " if rng.random() < 0.6 else ""
        text = _choice(rng, OBJECT_TEMPLATES).format(
            a="a", size=size, color=_choice(rng, COLOR_WORDS[o["color"]]),
            shape=_choice(rng, SHAPE_WORDS[o["shape"]]), verb=verb, ing=ing)
        parts.append(text)
    caption = parts[0]
    for p in parts[1:]:
        caption += _choice(rng, JOINERS) + p
    caption = caption.replace(" a a", " an a").replace("a e", "an e")
    if attrs["background"] and rng.random() < 0.4:
        caption += f" on a {_choice(rng, BACKGROUND_PHRASES[attrs['background']])}"
    if attrs["camera"] != "static" or rng.random() < 0.3:
        cam = _choice(rng, CAMERA_PHRASES[attrs["camera"]])
        caption = f"{cam}: {caption}" if rng.random() < 0.2 else f"{caption}, {cam}"
    caption = caption.replace("a a", "an a").replace("a e", "an e").replace("a o", "an o").replace("a i", "an i")
    return caption[0].upper() + caption[1:] if rng.random() < 0.5 else caption


# ------------------------------------------------------------------ motion paths

def _object_params(o: dict, t: np.ndarray):
    """Per-frame displacement (dx, dy), log-scale and angle of an object, t in seconds."""
    zero = np.zeros_like(t)
    dx = dy = rot = logs = zero
    m, sp = o["motion"], o["speed"]
    if m in DIRECTIONS:
        ux, uy = DIRECTIONS[m]
        norm = np.hypot(ux, uy)
        dx, dy = ux / norm * TRAVEL[sp] * t, uy / norm * TRAVEL[sp] * t
    elif m == "bounce":
        dy = -0.15 * np.abs(np.sin(np.pi * BOUNCE[sp] * t))
    elif m == "rotate":
        rot = SPIN[sp] * t
    elif m in ("grow", "shrink"):
        logs = (1 if m == "grow" else -1) * SCALE_RATE[sp] * (t - t[-1] / 2)  # nominal size mid-clip
    return dx, dy, logs, rot


def _camera(camera: str, t: np.ndarray, ex: float, ey: float):
    """Camera centre (world) and zoom per frame. Panning left moves the view left (content moves right)."""
    cx, cy, z = np.full_like(t, ex / 2), np.full_like(t, ey / 2), np.ones_like(t)
    if camera.startswith("pan-"):
        ux, uy = DIRECTIONS[camera[4:]]
        cx, cy = cx + ux * PAN_SPEED * t, cy + uy * PAN_SPEED * t
    elif camera == "zoom-in":
        z = np.exp(ZOOM_RATE * t)
    elif camera == "zoom-out":
        z = np.exp(-ZOOM_RATE * t)
    return cx, cy, z


def _place(rng, o, t, cam, ex, ey, others, k=12):
    """Pick a start position (world) that keeps the object on screen and away from the others."""
    dx, dy, logs, _ = _object_params(o, t)
    cx, cy, z = cam
    r = SIZES[o["size"]] * np.exp(logs) * z * 1.25  # screen radius, with room for star tips
    x0 = rng.uniform(0, ex, size=(k, 1))
    y0 = rng.uniform(0, ey, size=(k, 1))
    sx, sy = (x0 + dx - cx) * z + ex / 2, (y0 + dy - cy) * z + ey / 2  # (k, T) screen paths
    overflow = np.maximum.reduce([r - sx, sx + r - ex, r - sy, sy + r - ey, np.zeros_like(sx)]).max(1)
    crowd = sum(np.maximum(0, 0.3 - np.hypot(sx - px, sy - py)).mean(1) for px, py in others) if others else 0
    best = int(np.argmin(overflow + 0.5 * crowd))
    return x0[best, 0], y0[best, 0], (sx[best], sy[best]), r


# ------------------------------------------------------------------ rendering

def _sdf(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Signed distance (negative inside) of a unit-radius shape; y points down."""
    if shape == "circle":
        return np.sqrt(u * u + v * v) - 1.0
    if shape == "ring":
        return np.abs(np.sqrt(u * u + v * v) - 0.72) - 0.28
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) - 0.85
    if shape == "triangle":  # pointing up, circumradius 1.25
        return np.maximum(np.maximum(v, 0.866 * u - 0.5 * v), -0.866 * u - 0.5 * v) - 0.625
    if shape == "star":  # five points, outer radius 1.3, inner 0.55: distance to one edge after folding
        sector = 2 * np.pi / 5
        a = np.abs(np.mod(np.arctan2(u, -v), sector) - sector / 2)  # 0 at the gap between two tips
        rho = np.sqrt(u * u + v * v)
        px, py = rho * np.cos(a), rho * np.sin(a)
        ix, tx, ty = 0.55, 1.3 * np.cos(sector / 2), 1.3 * np.sin(sector / 2)
        nx, ny = ty, ix - tx  # outward normal of the edge from inner vertex to tip
        norm = np.hypot(nx, ny)
        return ((px - ix) * nx + py * ny) / norm
    raise InputError(f"unknown shape {shape!r}")


def _rgb(hue_deg: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb((hue_deg % 360) / 360, s, v), np.float32)


def _background(rng, kind: str, wx, wy, out: np.ndarray) -> None:
    """Fill `out` (T, H, W, 3) with a background in [0, 255] (+0.5, see `render`), drawn in
    world coordinates so camera moves show. `wx`, `wy` may have one frame (static camera).
    Sums inside sines are expanded so that no full-size sine is taken."""
    hue = rng.uniform(0, 360)
    base = 255 * _rgb(hue, rng.uniform(0, 0.25), rng.uniform(0.08, 0.55)) + 0.5
    if kind == "plain":
        out[...] = base
    elif kind == "gradient":
        other = 255 * _rgb(hue + rng.uniform(-60, 60), rng.uniform(0, 0.25), rng.uniform(0.08, 0.55)) + 0.5
        ang, k = rng.uniform(0, 2 * np.pi), rng.uniform(0.7, 1.2)
        g = np.clip((0.5 + k * np.cos(ang) * (wx - 0.5)) + k * np.sin(ang) * (wy - 0.5), 0, 1)
        np.multiply(g[..., None], other - base, out=out)
        out += base
    else:
        pattern = 255 * rng.uniform(0.06, 0.14)  # amplitude
        for f, a in zip(rng.uniform(12, 30, 2), rng.uniform(0, np.pi, 2)):  # sin(p+q) = sin p cos q + cos p sin q
            p, q = f * np.cos(a) * wx, f * np.sin(a) * wy
            pattern = pattern * (np.sin(p) * np.cos(q) + np.cos(p) * np.sin(q))
        np.add(pattern[..., None], base, out=out)
        np.clip(out, 0.5, 255.49, out=out)


def render(attrs: dict, rng: np.random.Generator, frames: int, height: int, width: int, fps: float):
    """Render a scene; returns uint8 frames (T, H, W, 3) and fills in per-object screen paths.

    Work is kept to the pixels that matter: with a static camera the background is drawn once,
    and each object is drawn only inside the box its path sweeps across the clip."""
    T, H, W = frames, height, width
    m = min(H, W)
    ex, ey = W / m, H / m
    t = (np.arange(T) / fps).astype(np.float64)
    cam = _camera(attrs["camera"], t, ex, ey)
    cx, cy, z = cam
    px = (np.arange(W) + 0.5) / m - ex / 2  # pixel centres relative to the frame centre
    py = (np.arange(H) + 0.5) / m - ey / 2
    wx = (cx[:, None] + px[None] / z[:, None])[:, None, :].astype(np.float32)  # (T, 1, W) world x
    wy = (cy[:, None] + py[None] / z[:, None])[:, :, None].astype(np.float32)  # (T, H, 1) world y
    # Colours carry +0.5 so the final cast to uint8 rounds; compositing is convex, so it stays.
    img = np.empty((T, H, W, 3), np.float32)
    static = attrs["camera"] == "static"
    _background(rng, attrs["background"], wx[:1] if static else wx, wy[:1] if static else wy, img)
    zz = (z * m).astype(np.float32)[:, None, None]  # world units -> pixels
    placed = []
    for o in attrs["objects"]:
        x0, y0, path, r = _place(rng, o, t, cam, ex, ey, placed)
        placed.append(path)
        o["path"] = [[round(float(path[0][i]) / ex, 4), round(float(path[1][i]) / ey, 4)] for i in (0, -1)]
        o["hue"] = round(float((COLORS[o["color"]] + rng.uniform(-6, 6)) % 360), 2)
        color = 255 * _rgb(o["hue"], rng.uniform(0.8, 1.0), rng.uniform(0.85, 1.0)) + 0.5
        # pixel box swept by the object (r already has room for the pointiest shape)
        xa, xb = np.floor((path[0] - r).min() * m) - 1, np.ceil((path[0] + r).max() * m) + 1
        ya, yb = np.floor((path[1] - r).min() * m) - 1, np.ceil((path[1] + r).max() * m) + 1
        xa, xb, ya, yb = int(max(xa, 0)), int(min(xb, W)), int(max(ya, 0)), int(min(yb, H))
        if xa >= xb or ya >= yb:
            continue  # entirely off screen
        dx, dy, logs, rot = _object_params(o, t)
        radius = (SIZES[o["size"]] * np.exp(logs)).astype(np.float32)[:, None, None]
        u = (wx[:, :, xa:xb] - (x0 + dx).astype(np.float32)[:, None, None]) / radius
        v = (wy[:, ya:yb] - (y0 + dy).astype(np.float32)[:, None, None]) / radius
        if o["motion"] == "rotate":
            c, s = np.cos(rot).astype(np.float32)[:, None, None], np.sin(rot).astype(np.float32)[:, None, None]
            u, v = c * u + s * v, c * v - s * u
        d = _sdf(o["shape"], u, v) * (radius * zz)  # distance in pixels
        alpha = np.clip(0.5 - d, 0, 1)[..., None]  # one-pixel ramp: anti-aliasing, sub-pixel motion
        box = img[:, ya:yb, xa:xb]
        box += alpha * (color - box)
    return img.astype(np.uint8)




def _whole(name: str, value, lo: int, hi: int | None = None) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or value < lo or (hi is not None and value > hi):
        raise InputError(f"{name} must be a whole number {f'between {lo} and {hi}' if hi is not None else f'>= {lo}'}, "
                         f"got {value!r}")
    return int(value)


def check_clip_frames(frames) -> int:
    return _whole("frames", frames, 1, MAX_CLIP_FRAMES)


def check_index(index, what: str = "clip index") -> int:
    """A clip index (or a first index): a whole number >= 0."""
    return _whole(what, index, 0)


class SyntheticClips:
    """Map-style access: `clips[i]` is a `Clip`, identical for the same (seed, split, index)."""

    def __init__(self, split: str = "train", seed: int = 0, frames: int = 17, height: int = 64,
                 width: int = 64, fps: float = 8.0):
        if split not in SPLITS:
            raise InputError(f"unknown split '{split}'; choose one of {', '.join(SPLITS)}")
        self.split, self.seed, self.fps = split, _whole("seed", seed, 0), check_fps(fps)
        self.frames = check_clip_frames(frames)
        self.height, self.width = check_size(height, width)
        if self.frames * self.height * self.width > MAX_CLIP_PIXELS:
            raise InputError(f"a clip of {self.frames} frames x {self.height}x{self.width} is over the limit of "
                             f"{MAX_CLIP_PIXELS:,} pixels: ask for fewer frames or a smaller size")

    def __getitem__(self, index: int) -> Clip:
        if index < 0:
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, SPLITS[self.split], int(index)])
        attrs = sample_attributes(rng, self.split)
        frames = render(attrs, rng, self.frames, self.height, self.width, self.fps)
        caption = write_caption(rng, attrs)
        attrs.update(split=self.split, seed=self.seed, index=int(index), frames=self.frames,
                     height=self.height, width=self.width, fps=self.fps)
        return Clip(frames, self.fps, caption, attrs)


def shard() -> tuple[int, int]:
    """(position, count) of this process among all DataLoader workers of all torchrun ranks."""
    info = torch.utils.data.get_worker_info()
    wid, nw = (info.id, info.num_workers) if info else (0, 1)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    else:
        rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    return rank * nw + wid, world * nw


class SyntheticVideoDataset(torch.utils.data.IterableDataset):
    """An endless stream of clips as training samples, split across DataLoader workers and
    torchrun ranks without repeats: shard k of n reads indices start + k, start + k + n, ...

    Yields dicts: `video` (3, T, H, W) float in [-1, 1], `caption`, `attributes`, `index`.
    Use `collate` as the DataLoader's collate_fn. `limit` stops after that many indices.
    """

    def __init__(self, split: str = "train", seed: int = 0, frames: int = 17, height: int = 64,
                 width: int = 64, fps: float = 8.0, start: int = 0, limit: int | None = None):
        super().__init__()
        self.clips = SyntheticClips(split, seed, frames, height, width, fps)
        self.start, self.limit = check_index(start, "start"), limit

    def __iter__(self):
        k, n = shard()
        stop = self.start + self.limit if self.limit is not None else None
        for i in itertools.count(self.start + k, n):
            if stop is not None and i >= stop:
                return
            clip = self.clips[i]
            yield {"video": clip.video.to_tensor(), "caption": clip.caption, "attributes": clip.attributes, "index": i}

    @staticmethod
    def collate(items: list[dict]) -> dict:
        return {"video": torch.stack([x["video"] for x in items]), "caption": [x["caption"] for x in items],
                "attributes": [x["attributes"] for x in items], "index": torch.tensor([x["index"] for x in items])}
