"""The procedural dataset: determinism, splits, and attributes that match what is drawn."""

import colorsys
import hashlib

import numpy as np
import pytest
import torch

from kinema.data import synthetic as syn
from kinema.data.synthetic import (COLORS, HELD_OUT_PAIRS, MOTIONS, SHAPES, SyntheticClips,
                                   SyntheticVideoDataset, render, sample_attributes)
from kinema.errors import InputError
from kinema.evaluate import saturated_mask


def scene(shape="square", color="red", size="medium", motion="still", speed=None, camera="static",
          background="plain", seed=0, frames=17, height=64, width=64, fps=8.0):
    attrs = {"objects": [{"shape": shape, "color": color, "size": size, "motion": motion, "speed": speed}],
             "num_objects": 1, "camera": camera, "background": background}
    return render(attrs, np.random.default_rng(seed), frames, height, width, fps), attrs


def object_mask(frames):
    """Pixels of the (saturated) object against a desaturated background."""
    return saturated_mask(frames)


def centroids(frames):
    m = object_mask(frames)
    ys, xs = np.mgrid[: m.shape[1], : m.shape[2]]
    area = m.sum((1, 2))
    return (m * xs).sum((1, 2)) / area, (m * ys).sum((1, 2)) / area, area


def test_same_seed_and_index_give_identical_clips():
    a, b = SyntheticClips(seed=3)[11], SyntheticClips(seed=3)[11]
    assert np.array_equal(a.frames, b.frames) and a.caption == b.caption and a.attributes == b.attributes
    c = SyntheticClips(seed=4)[11]
    assert not np.array_equal(a.frames, c.frames)


def test_splits_never_overlap():
    hashes = {}
    for split in ("train", "heldout", "compositions"):
        clips = SyntheticClips(split, seed=0, frames=5, height=32, width=32)
        hashes[split] = {hashlib.sha1(clips[i].frames.tobytes()).hexdigest() for i in range(150)}
        assert len(hashes[split]) == 150  # no repeats within a split either
    assert not hashes["train"] & hashes["heldout"]
    assert not hashes["train"] & hashes["compositions"]
    assert not hashes["heldout"] & hashes["compositions"]


def test_held_out_compositions_only_in_their_split():
    for split in ("train", "heldout"):
        rng = np.random.default_rng(0)
        pairs = {(o["color"], o["shape"]) for _ in range(3000) for o in sample_attributes(rng, split)["objects"]}
        assert not pairs & HELD_OUT_PAIRS
        assert len(pairs) == len(COLORS) * len(SHAPES) - len(HELD_OUT_PAIRS)  # everything else appears
    rng = np.random.default_rng(0)
    for _ in range(500):
        objs = sample_attributes(rng, "compositions")["objects"]
        assert (objs[0]["color"], objs[0]["shape"]) in HELD_OUT_PAIRS
        assert len({o["color"] for o in objs}) == len(objs)


def test_vocabulary_is_as_documented():
    assert len(SHAPES) >= 5 and len(COLORS) >= 6 and len(MOTIONS) >= 11
    hues = sorted(COLORS.values())
    assert min(np.diff(hues + [hues[0] + 360])) >= 30  # distinct hues
    assert {"left", "right", "up", "down", "bounce", "rotate", "grow", "shrink", "still"} <= set(MOTIONS)
    assert set(syn.CAMERAS) == {"static", "pan-left", "pan-right", "pan-up", "pan-down", "zoom-in", "zoom-out"}
    assert set(syn.BACKGROUNDS) == {"plain", "gradient", "textured"}


@pytest.mark.parametrize("direction", list(syn.DIRECTIONS))
def test_centroid_moves_in_the_captioned_direction(direction):
    frames, _ = scene(motion=direction, speed="fast")
    x, y, _ = centroids(frames)
    move = np.array([x[-1] - x[0], y[-1] - y[0]])
    want = np.array(syn.DIRECTIONS[direction], float)
    cos = move @ want / (np.linalg.norm(move) * np.linalg.norm(want))
    assert cos > 0.95 and np.linalg.norm(move) > 8  # pixels, over 2 s


def test_fast_is_faster_than_slow():
    slow, _ = scene(motion="right", speed="slow")
    fast, _ = scene(motion="right", speed="fast")
    dslow, dfast = (c[0][-1] - c[0][0] for c in (centroids(slow), centroids(fast)))
    assert dfast > 1.7 * dslow > 0


@pytest.mark.parametrize("color", list(COLORS))
def test_object_hue_matches_its_colour_word(color):
    frames, _ = scene(color=color, size="large")
    rgb = frames[object_mask(frames)].astype(np.float32).mean(0) / 255
    hue = colorsys.rgb_to_hsv(*rgb)[0] * 360
    assert min(abs(hue - COLORS[color]), 360 - abs(hue - COLORS[color])) < 12


def test_grow_shrink_bounce_rotate_still():
    area = lambda motion: centroids(scene(motion=motion, speed="fast")[0])[2]  # noqa: E731
    grow, shrink, still = area("grow"), area("shrink"), area("still")
    assert grow[-1] > 2 * grow[0] and shrink[-1] < 0.5 * shrink[0]
    assert np.ptp(still) == 0
    _, y, _ = centroids(scene(motion="bounce", speed="slow")[0])
    assert y.min() < y[0] - 5 and abs(y[8] - y[0]) < 1  # up, then back down after one bounce (1 s)
    frames, _ = scene(shape="star", motion="rotate", speed="slow")
    x, y, a = centroids(frames)
    masks = object_mask(frames)
    assert np.ptp(x) < 0.5 and np.ptp(y) < 0.5 and np.ptp(a) / a.mean() < 0.1  # spins in place (mask edges alias)
    assert (masks[0] ^ masks[2]).sum() > 20  # ... but it does turn


def test_camera_moves():
    x, _, _ = centroids(scene(camera="pan-left")[0])
    assert x[-1] - x[0] > 8  # the view moves left, so a still object drifts right on screen
    _, y, _ = centroids(scene(camera="pan-down")[0])
    assert y[-1] - y[0] < -8
    _, _, a = centroids(scene(camera="zoom-in")[0])
    assert a[-1] > 1.5 * a[0]
    _, _, a = centroids(scene(camera="zoom-out")[0])
    assert a[-1] < a[0] / 1.5
    textured, _ = scene(background="textured", camera="pan-right", shape="circle", size="small")
    static, _ = scene(background="textured", shape="circle", size="small")
    assert np.abs(np.diff(textured.astype(int), axis=0)).mean() > 5 * np.abs(np.diff(static.astype(int), axis=0)).mean()


def test_every_camera_move_is_visible_in_the_background():
    """A pan over a plain background would look like every object moving the other way: the
    dataset only moves the camera over backgrounds where the move shows (most pixels change)."""
    clips = SyntheticClips("train", frames=9, height=32, width=32)
    moving = [c for c in (clips[i] for i in range(120)) if c.attributes["camera"] != "static"]
    assert len(moving) > 30
    for c in moving:
        changed = (np.abs(c.frames[-1].astype(int) - c.frames[0].astype(int)).max(-1) > 3).mean()
        assert changed > 0.5, (c.attributes["camera"], c.attributes["background"], changed)


def test_edges_are_anti_aliased_and_motion_is_sub_pixel():
    frames, _ = scene(shape="circle", size="large")
    f = frames[0].astype(int)
    bg, fg = f[0, 0], frames[object_mask(frames)][0].astype(int)
    between = ((f - bg) * (fg - bg)).sum(-1) / ((fg - bg) ** 2).sum()
    assert ((between > 0.1) & (between < 0.9)).sum() > 20  # partially covered edge pixels
    x, _, _ = centroids(scene(motion="right", speed="slow")[0])
    assert 0.2 < np.diff(x).mean() < 1.0  # slow motion moves less than a pixel per frame


def test_any_size_aspect_length_and_fps():
    for frames, h, w, fps in ((1, 32, 32, 8), (9, 48, 80, 12), (33, 80, 48, 24)):
        c = SyntheticClips(frames=frames, height=h, width=w, fps=fps)[5]
        assert c.frames.shape == (frames, h, w, 3) and c.fps == fps
        assert object_mask(c.frames).any()
        assert c.attributes["frames"] == frames and c.attributes["height"] == h


def test_captions_are_varied_and_name_what_is_drawn():
    clips = SyntheticClips(frames=1, height=16, width=16)
    caps, templates = [], set()
    for i in range(300):
        c = clips[i]
        caps.append(c.caption)
        low = c.caption.lower()
        for o in c.attributes["objects"]:
            assert any(w in low for w in syn.COLOR_WORDS[o["color"]]), (c.caption, o)
            assert any(w in low for w in syn.SHAPE_WORDS[o["shape"]]), (c.caption, o)
        if c.attributes["camera"] != "static":
            assert any(p in low for p in syn.CAMERA_PHRASES[c.attributes["camera"]])
    assert len(set(caps)) == 300


def test_stream_splits_work_across_workers_and_ranks(monkeypatch):
    ds = SyntheticVideoDataset(frames=1, height=16, width=16, start=100, limit=24)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2, collate_fn=ds.collate)
    seen = [i for b in loader for i in b["index"].tolist()]
    assert sorted(seen) == list(range(100, 124))
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=3, collate_fn=ds.collate)))
    assert batch["video"].shape == (3, 3, 1, 16, 16) and len(batch["caption"]) == 3
    shards = []
    for rank in range(3):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "3")
        shards.append([x["index"] for x in ds])
    assert sorted(sum(shards, [])) == list(range(100, 124)) and all(len(s) == 8 for s in shards)


def test_stream_is_endless_without_limit():
    it = iter(SyntheticVideoDataset(frames=1, height=8, width=8))
    assert [next(it)["index"] for _ in range(50)] == list(range(50))


def test_bad_dataset_arguments():
    with pytest.raises(InputError, match="unknown split"):
        SyntheticClips("validation")
    with pytest.raises(InputError, match="impossible"):
        SyntheticClips(height=1, width=1)
    with pytest.raises(InputError, match="fps"):
        SyntheticClips(fps=-1)
