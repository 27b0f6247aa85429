"""Pictures people would rather look at than read: contact sheets and captioned clip grids."""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .video import Video

GAP = 4
BACKGROUND = (24, 24, 28)
TEXT = (235, 235, 235)


@functools.lru_cache(maxsize=8)
def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow built without FreeType
        return ImageFont.load_default()


def _wrap(text: str, font, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        trial = f"{line} {word}".strip()
        if line and font.getlength(trial) > width:
            lines.append(line)
            line = word
        else:
            line = trial
    return lines + [line] if line else lines


def label(text: str, width: int, size: int = 12, max_lines: int = 4) -> np.ndarray:
    """A (h, width, 3) uint8 strip with `text` wrapped onto at most `max_lines` lines."""
    font = _font(size)
    lines = _wrap(text, font, width - 8)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1].rstrip(".,") + "..."
    line_h = size + 3
    img = Image.new("RGB", (width, max(1, len(lines)) * line_h + 6), BACKGROUND)
    draw = ImageDraw.Draw(img)
    for i, line in enumerate(lines):
        draw.text((4, 3 + i * line_h), line, fill=TEXT, font=font)
    return np.asarray(img)


def _upscale(frames: np.ndarray, scale: int) -> np.ndarray:
    return frames.repeat(scale, axis=-3).repeat(scale, axis=-2) if scale > 1 else frames


def _pad_to(img: np.ndarray, h: int, w: int, top: int = 0, left: int = 0) -> np.ndarray:
    """Place `img` (..., h0, w0, 3) at (top, left) on a background canvas (..., h, w, 3)."""
    out = np.empty((*img.shape[:-3], h, w, 3), np.uint8)
    out[...] = BACKGROUND
    out[..., top:top + img.shape[-3], left:left + img.shape[-2], :] = img
    return out


def contact_sheet(videos: list[Video], captions: list[str], frames: int = 5, scale: int = 2) -> np.ndarray:
    """One row per clip: `frames` evenly spaced frames side by side, the caption underneath."""
    rows = []
    for video, caption in zip(videos, captions):
        idx = np.linspace(0, video.num_frames - 1, min(frames, video.num_frames)).round().astype(int)
        tiles = [_upscale(video.frames[i], scale) for i in idx]
        gap = np.full((tiles[0].shape[0], GAP, 3), BACKGROUND, np.uint8)
        strip = np.concatenate([x for tile in tiles for x in (tile, gap)][:-1], axis=1)
        rows.append(np.concatenate([strip, label(caption, strip.shape[1])], axis=0))
    width = max(r.shape[1] for r in rows)
    sheet = np.concatenate([_pad_to(r, r.shape[0] + GAP, width) for r in rows], axis=0)
    return _pad_to(sheet, sheet.shape[0] + GAP, width + 2 * GAP, top=GAP, left=GAP)


def video_grid(videos: list[Video], captions: list[str], cols: int = 4, scale: int = 2) -> Video:
    """Tile clips into one video (`cols` per row), each with its caption below; shorter clips
    hold their last frame."""
    T = max(v.num_frames for v in videos)
    tw = max(v.width for v in videos) * scale
    th = max(v.height for v in videos) * scale
    labels = [label(c, tw, size=10, max_lines=3) for c in captions]
    lh = max(lab.shape[0] for lab in labels)
    tiles = []
    for video, lab in zip(videos, labels):
        f = video.frames[np.minimum(np.arange(T), video.num_frames - 1)]
        tile = _pad_to(_upscale(f, scale), th + lh, tw)
        tile[:, th:th + lab.shape[0]] = lab
        tiles.append(_pad_to(tile, th + lh + GAP, tw + GAP))
    while len(tiles) % cols:
        tiles.append(_pad_to(tiles[0][:, :0, :0], th + lh + GAP, tw + GAP))
    rows = [np.concatenate(tiles[i:i + cols], axis=2) for i in range(0, len(tiles), cols)]
    grid = np.concatenate(rows, axis=1)
    H, W = grid.shape[1] + GAP, grid.shape[2] + GAP
    return Video(_pad_to(grid, H + H % 2, W + W % 2, top=GAP, left=GAP), videos[0].fps)


def line_plot(x: list[float], series: dict[str, list[float]], path, title: str = "", log_y: bool = False,
              size: tuple[int, int] = (640, 360)) -> None:
    """A small line chart (PNG) of one or more series against x, e.g. a loss curve."""
    import math

    from .atomic import atomic_path
    W, H = size
    left, right, top, bottom = 64, 16, 28, 36
    colors = [(90, 170, 255), (255, 140, 80), (120, 220, 120), (230, 100, 200)]
    f = (lambda v: math.log10(max(v, 1e-12))) if log_y else (lambda v: v)
    ys = [f(v) for vals in series.values() for v in vals if math.isfinite(v)]
    if not x or not ys:
        return
    x0, x1 = min(x), max(x) if max(x) > min(x) else min(x) + 1
    y0, y1 = min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1
    sx = lambda v: left + (v - x0) / (x1 - x0) * (W - left - right)  # noqa: E731
    sy = lambda v: top + (1 - (f(v) - y0) / (y1 - y0)) * (H - top - bottom)  # noqa: E731
    img = Image.new("RGB", size, BACKGROUND)
    draw = ImageDraw.Draw(img)
    font = _font(11)
    draw.rectangle([left, top, W - right, H - bottom], outline=(80, 80, 90))
    for i in range(5):  # y ticks
        yv = y0 + (y1 - y0) * i / 4
        y = top + (1 - i / 4) * (H - top - bottom)
        draw.text((4, y - 6), f"{10 ** yv:.3g}" if log_y else f"{yv:.3g}", fill=TEXT, font=font)
    for i in range(5):  # x ticks
        xv = x0 + (x1 - x0) * i / 4
        draw.text((sx(xv) - 10, H - bottom + 6), f"{xv:.0f}", fill=TEXT, font=font)
    for (name, vals), color in zip(series.items(), colors):
        pts = [(sx(a), sy(b)) for a, b in zip(x, vals) if math.isfinite(b)]
        if len(pts) > 1:
            draw.line(pts, fill=color, width=2)
    legend = "   ".join(series)
    draw.text((left, 8), f"{title}   {legend}" + ("   (log scale)" if log_y else ""), fill=TEXT, font=font)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")
