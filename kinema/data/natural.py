"""Natural-looking clips from data kinema may ship or generate: a source for the autoencoder.

A general-purpose autoencoder needs natural-image statistics, but kinema downloads nothing. So
every clip here is a pure function of (seed, index), made from three ingredients:

1. `photo`: a photograph that ships inside a PyPI package (scikit-image's and matplotlib's
   sample data, when installed: `pip install 'kinema[photos]'`) filmed by a synthetic camera:
   a view of random size (from the whole photo down to ~1.5 source pixels a pixel) that pans,
   zooms, rotates and shakes; colours jittered (hue, saturation, gamma, exposure), grey
   textures (brick, grass, gravel) tinted;
2. `layers`: parallax: a photo background with 1-3 feathered cut-outs of other photos moving
   over it at their own speeds;
3. `leaves`: the "dead leaves" model (occluding discs and boxes with power-law sizes, flat,
   shaded or textured, with coloured-noise fields): scale-invariant edges and occlusions, the
   statistics that make it teach restoration networks much of what photographs do; each leaf
   moves (a global pan plus its own drift).

A tenth of the clips cut hard to another clip part way through, so an autoencoder learns to
carry a scene cut inside a 4-frame latent group instead of smearing it.

Without the photo packages only `leaves` is drawn (a warning says so once).
"""

from __future__ import annotations

import functools
import importlib.util
import warnings
from pathlib import Path

import cv2
import numpy as np

from ..video import check_fps, check_size
from .source import Clip

KINDS = {"photo": 0.45, "layers": 0.25, "leaves": 0.3}
CUT_RATE = 0.1
# Greyscale files among the photos below: tinted or left grey.
_SKIMAGE = ("astronaut.png", "chelsea.png", "coffee.png", "hubble_deep_field.jpg", "ihc.png", "motorcycle_left.png",
            "motorcycle_right.png", "retina.jpg", "rocket.jpg", "color.png", "brick.png", "grass.png",
            "gravel.png", "camera.png", "moon.png", "coins.png", "cell.png", "clock_motion.png", "page.png")
_MATPLOTLIB = ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png")


def photo_files() -> list[Path]:
    """The sample photographs of the installed packages (none if neither is installed)."""
    found = []
    for module, names, sub in (("skimage", _SKIMAGE, "data"), ("matplotlib", _MATPLOTLIB, "mpl-data/sample_data")):
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.origin:
            continue
        folder = Path(spec.origin).parent / sub
        found += [folder / n for n in names if (folder / n).is_file()]
    return found


@functools.lru_cache(maxsize=1)
def load_photos() -> tuple[np.ndarray, ...]:
    """The photos as float32 (H, W, 3) in [0, 1]; greys kept as 3 equal channels."""
    photos = []
    for path in photo_files():
        im = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if im is not None and min(im.shape[:2]) >= 64:
            if max(im.shape[:2]) > 768:  # the views never need more
                f = 768 / max(im.shape[:2])
                im = cv2.resize(im, (round(im.shape[1] * f), round(im.shape[0] * f)), interpolation=cv2.INTER_AREA)
            photos.append(np.ascontiguousarray(im[..., ::-1], dtype=np.float32) / 255.0)
    if not photos:
        warnings.warn("no sample photographs found (pip install scikit-image matplotlib): natural clips are "
                      "dead leaves only")
    return tuple(photos)


# ------------------------------------------------------------------ colour

def _jitter_colour(rng, img: np.ndarray) -> np.ndarray:
    """Hue turn, saturation, gamma and exposure of frames (..., 3); grey ones are tinted half the time."""
    grey = float(np.abs(img[..., 0] - img[..., 2]).mean()) < 1e-3
    if grey and rng.random() < 0.5:
        lo, hi = rng.uniform(0, 1, 3).astype(np.float32), rng.uniform(0, 1, 3).astype(np.float32)
        img = lo + img[..., :1] * (hi - lo)  # a two-colour gradient map
    y = img @ np.array([0.299, 0.587, 0.114], np.float32)
    chroma = (img - y[..., None]) * np.float32(rng.uniform(0.6, 1.4))
    a = rng.uniform(-np.pi, np.pi) if rng.random() < 0.5 else 0.0  # turn hue about the grey axis (Rodrigues)
    if a:
        k = np.full(3, 1 / np.sqrt(3), np.float32)
        chroma = chroma * np.cos(a) + np.cross(k, chroma) * np.sin(a) + np.outer(chroma @ k, k).reshape(chroma.shape) * (1 - np.cos(a))
    img = np.clip(y[..., None] + chroma, 0, 1)
    return np.clip(img ** np.float32(rng.uniform(0.7, 1.4)) * np.float32(rng.uniform(0.75, 1.2)), 0, 1)


# ------------------------------------------------------------------ synthetic camera

def _camera_paths(rng, T: int, src_h: int, src_w: int, H: int, W: int, min_view: float):
    """Per-frame affine maps (T, 2, 3) from output pixels to source pixels: a view that pans,
    zooms, rotates and shakes inside the source (reflected at its edges)."""
    m = min(H, W)
    short = min(src_h, src_w)
    view = float(np.exp(rng.uniform(np.log(min(min_view * m, short)), np.log(short))))  # source px per output short side
    t = np.linspace(0, 1, T)
    zoom = np.exp(rng.uniform(-0.5, 0.5) * t) if rng.random() < 0.4 else np.ones(T)
    angle = rng.uniform(-0.3, 0.3) + (rng.uniform(-0.5, 0.5) * t if rng.random() < 0.2 else 0 * t)
    travel = rng.uniform(0, 0.8) * view * np.array([np.cos(d := rng.uniform(0, 2 * np.pi)), np.sin(d)])
    cx = rng.uniform(0.3, 0.7) * src_w + travel[0] * (t - 0.5)
    cy = rng.uniform(0.3, 0.7) * src_h + travel[1] * (t - 0.5)
    if rng.random() < 0.3:  # hand-held shake
        amp = rng.uniform(0.005, 0.03) * view
        cx, cy = cx + amp * rng.standard_normal(T), cy + amp * rng.standard_normal(T)
    s = view / m / zoom  # source pixels per output pixel
    c, si = np.cos(angle) * s, np.sin(angle) * s
    px, py = (W - 1) / 2, (H - 1) / 2
    maps = np.empty((T, 2, 3))
    maps[:, 0, 0], maps[:, 0, 1], maps[:, 0, 2] = c, -si, cx - c * px + si * py
    maps[:, 1, 0], maps[:, 1, 1], maps[:, 1, 2] = si, c, cy - si * px - c * py
    return maps, float(s.max())


def _film(rng, img: np.ndarray, T: int, H: int, W: int, min_view: float = 0.7) -> np.ndarray:
    """(T, H, W, 3) float32: `img` through a moving camera. The source is first shrunk (area
    averaging) to about the view's scale, so frames are antialiased, then warped per frame."""
    if rng.random() < 0.5:
        img = img[:, ::-1]
    maps, scale = _camera_paths(rng, T, *img.shape[:2], H, W, min_view)
    if scale > 1.5:  # pre-shrink so each warp samples about one source pixel per output pixel
        f = 1.0 / scale
        img = cv2.resize(img, (max(2, round(img.shape[1] * f)), max(2, round(img.shape[0] * f))),
                         interpolation=cv2.INTER_AREA)
        maps = maps.copy()
        maps[:, :, :] *= f
    out = np.empty((T, H, W, 3), np.float32)
    for i in range(T):
        out[i] = cv2.warpAffine(img, maps[i], (W, H), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                                borderMode=cv2.BORDER_REFLECT_101)
    return out


def _noise_field(rng, H: int, W: int, channels: int = 3) -> np.ndarray:
    """Coloured noise with a 1/f^a spectrum (a in [1, 2.5]), (H, W, channels) in about [-1, 1]."""
    fy, fx = np.fft.fftfreq(H)[:, None], np.fft.rfftfreq(W)[None]
    f = np.sqrt(fx * fx + fy * fy)
    f[0, 0] = 1
    amp = f ** -rng.uniform(1.0, 2.5)
    amp[0, 0] = 0
    spec = amp[..., None] * (rng.standard_normal((H, W // 2 + 1, channels)) + 1j * rng.standard_normal((H, W // 2 + 1, channels)))
    field = np.fft.irfft2(spec, s=(H, W), axes=(0, 1))
    return (field / (np.abs(field).max() + 1e-8)).astype(np.float32)


def _leaf_canvas(rng, size: int, photos) -> np.ndarray:
    """A dead-leaves image (size, size, 3) in [0, 1]: 150-400 occluding discs and boxes with
    radius density ~ r^-3, each flat, shaded or textured."""
    img = np.empty((size, size, 3), np.float32)
    img[:] = rng.uniform(0, 1, 3)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    rmin, rmax = size * 0.01, size * 0.35
    n = int(rng.integers(150, 400))
    u = rng.uniform(0, 1, n)
    radii = (rmin ** -2 - u * (rmin ** -2 - rmax ** -2)) ** -0.5  # inverse CDF of p(r) ~ r^-3
    textures = [_noise_field(rng, 64, 64) for _ in range(4)]
    for r in np.sort(radii)[::-1]:  # large first, small on top
        cx, cy = rng.uniform(0, size, 2)
        x0, x1, y0, y1 = int(max(0, cx - r - 1)), int(min(size, cx + r + 2)), int(max(0, cy - r - 1)), int(min(size, cy + r + 2))
        if x0 >= x1 or y0 >= y1:
            continue
        dx, dy = xx[y0:y1, x0:x1] - cx, yy[y0:y1, x0:x1] - cy
        if rng.random() < 0.7:
            d = np.sqrt(dx * dx + dy * dy) - r
        else:
            a = rng.uniform(0, np.pi)
            u_, v_ = np.cos(a) * dx + np.sin(a) * dy, -np.sin(a) * dx + np.cos(a) * dy
            d = np.maximum(np.abs(u_) - r, np.abs(v_) - r * rng.uniform(0.3, 1))
        alpha = np.clip(0.5 - d / rng.choice([1.0, 1.0, 2.5]), 0, 1)[..., None]  # some leaves out of focus
        if photos and rng.random() < 0.5:  # a colour seen in a photograph
            p = photos[rng.integers(len(photos))]
            colour = p[rng.integers(p.shape[0]), rng.integers(p.shape[1])]
        else:
            colour = rng.uniform(0, 1, 3).astype(np.float32)
        fill = np.broadcast_to(colour, dx.shape + (3,)).astype(np.float32)
        style = rng.random()
        if style < 0.3:  # shaded
            g = (np.cos(a := rng.uniform(0, 2 * np.pi)) * dx + np.sin(a) * dy) / (2 * r + 1)
            fill = fill * (1 + rng.uniform(0.2, 0.8) * g[..., None])
        elif style < 0.6:  # textured
            h, w = y1 - y0, x1 - x0
            tex = textures[rng.integers(4)]
            if h > 64 or w > 64:
                tex = cv2.resize(tex, (max(w, 64), max(h, 64)))
            ty, tx = rng.integers(0, tex.shape[0] - h + 1), rng.integers(0, tex.shape[1] - w + 1)
            patch = tex[ty:ty + h, tx:tx + w]
            fill = fill + rng.uniform(0.05, 0.3) * patch
        box = img[y0:y1, x0:x1]
        box += alpha * (np.clip(fill, 0, 1) - box)
    return img


def _cutout(rng, shape: tuple[int, int]) -> np.ndarray:
    """A feathered mask (h, w, 1): an ellipse or a rounded box."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    u, v = (xx - w / 2) / (w / 2), (yy - h / 2) / (h / 2)
    d = np.sqrt(u * u + v * v) if rng.random() < 0.5 else np.maximum(np.abs(u), np.abs(v)) ** 4
    edge = rng.uniform(0.02, 0.15)
    return np.clip((1 - d) / edge, 0, 1)[..., None].astype(np.float32)


def _layers(rng, photos, T: int, H: int, W: int) -> np.ndarray:
    out = _jitter_colour(rng, _film(rng, photos[rng.integers(len(photos))], T, H, W))
    for _ in range(int(rng.integers(1, 4))):
        h, w = (int(rng.uniform(0.25, 0.7) * n) for n in (H, W))
        layer = _jitter_colour(rng, _film(rng, photos[rng.integers(len(photos))], 1, h, w))[0]
        mask = _cutout(rng, (h, w))
        x0, y0 = rng.uniform(-w / 2, W - w / 2), rng.uniform(-h / 2, H - h / 2)
        vx, vy = rng.uniform(-0.6, 0.6) * W / T, rng.uniform(-0.4, 0.4) * H / T
        for i in range(T):  # sub-pixel placement by an affine warp of the cut-out and its mask
            m = np.array([[1, 0, x0 + vx * i], [0, 1, y0 + vy * i]], np.float32)
            rgba = cv2.warpAffine(np.concatenate([layer * mask, mask], -1), m, (W, H), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            out[i] = out[i] * (1 - rgba[..., 3:]) + rgba[..., :3]
    return out


def _leaves(rng, photos, T: int, H: int, W: int) -> np.ndarray:
    m = max(H, W)
    size = int(m * rng.uniform(1.5, 3))
    canvas = _leaf_canvas(rng, min(size, 512), photos)
    return _film(rng, canvas, T, H, W, min_view=0.9)


def _grain(rng, frames: np.ndarray) -> np.ndarray:
    if rng.random() < 0.3:  # sensor noise, or film grain
        frames = frames + rng.uniform(0.005, 0.03) * rng.standard_normal(frames.shape).astype(np.float32)
    return frames


def natural_frames(rng: np.random.Generator, T: int, H: int, W: int) -> tuple[np.ndarray, str]:
    """(T, H, W, 3) uint8 frames and the kind of clip."""
    photos = load_photos()
    kinds = list(KINDS) if photos else ["leaves"]
    p = np.array([KINDS[k] for k in kinds])
    kind = str(rng.choice(kinds, p=p / p.sum()))
    if kind == "photo":
        frames = _jitter_colour(rng, _film(rng, photos[rng.integers(len(photos))], T, H, W))
    elif kind == "layers":
        frames = _layers(rng, photos, T, H, W)
    else:
        frames = _leaves(rng, photos, T, H, W)
    frames = _grain(rng, frames)
    return (np.clip(frames, 0, 1) * 255 + 0.5).astype(np.uint8), kind


class NaturalClips:
    """Map-style, unbounded: `clips.clip((frames, height, width), i)` is the same clip for the same
    (seed, shape, i). Captions are empty (the clips have no words; training them conditions on nothing)."""

    name = "natural"

    def __init__(self, seed: int = 0, fps: float = 8.0):
        self.seed, self.fps = int(seed), check_fps(fps)

    def __len__(self) -> int:
        return 0  # unbounded

    def count(self, shape: tuple[int, int, int]) -> int | None:
        return None

    def identity(self) -> dict:
        return {"source": "natural", "seed": self.seed, "version": 1, "photos": [p.name for p in photo_files()]}

    def clip(self, shape: tuple[int, int, int], index: int) -> Clip:
        T, H, W = shape
        check_size(H, W)
        rng = np.random.default_rng([self.seed, 7, int(index), T, H, W])
        frames, kind = natural_frames(rng, T, H, W)
        at = None
        if T > 1 and rng.random() < CUT_RATE:  # a hard cut to another clip part way through
            at = int(rng.integers(1, T))
            frames[at:] = natural_frames(rng, T - at, H, W)[0]
            kind += "+cut"
        return Clip(frames, self.fps, "", {"source": "natural", "kind": kind, "index": int(index), "cut": at})

