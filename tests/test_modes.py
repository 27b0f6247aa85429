"""One model for every mode: condition masks in training, and image-to-video, keyframes,
interpolation, extension and editing at sampling time, with tiny models."""

import json

import numpy as np
import pytest
import torch

from kinema.cli import main
from kinema.config import preset
from kinema.data.synthetic import SyntheticClips
from kinema.diffusion import masks
from kinema.errors import InputError
from kinema.models.transformer import create
from kinema.pipeline import load, prompt_schedule, schedule_at
from kinema.train import train
from kinema.video import Video


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny autoencoder and a tiny transformer trained with condition masks (the tiny preset's)."""
    root = tmp_path_factory.mktemp("runs")
    train("autoencoder", preset("autoencoder", "tiny"), root / "ae", max_steps=30, progress=False)
    cfg = preset("transformer", "tiny")
    assert cfg.condition_masks  # the presets train every mode
    train("transformer", cfg, root / "t2v", max_steps=20, autoencoder=root / "ae", progress=False)
    return root / "t2v"


@pytest.fixture(scope="module")
def pipe(run):
    return load(run)


@pytest.fixture(scope="module")
def clip():
    return SyntheticClips("train", frames=17, height=16, width=16)[0].video


# ------------------------------------------------------------------ masks
def test_each_mode_draws_its_mask():
    g = torch.Generator().manual_seed(0)
    m, modes = masks.sample_masks(64, 5, 4, 4, {"image": 1.0}, g)
    assert modes == ["image"] * 64 and m[:, 0].all() and not m[:, 1:].any()
    m, _ = masks.sample_masks(64, 5, 4, 4, {"interpolate": 1.0}, g)
    assert m[:, [0, -1]].all() and not m[:, 1:-1].any()
    m, _ = masks.sample_masks(64, 5, 4, 4, {"extend": 1.0}, g)
    k = m.all((2, 3)).sum(1)
    assert (k >= 1).all() and (k <= 4).all() and len(set(k.tolist())) > 1
    assert all(torch.equal(mi.all((1, 2)), torch.arange(5) < ki) for mi, ki in zip(m, k))  # a prefix of frames
    m, _ = masks.sample_masks(64, 5, 4, 4, {"keyframes": 1.0}, g)
    assert (m.all((2, 3)) == m.any((2, 3))).all()  # whole frames
    assert m.any((2, 3)).any(1).all() and (~m.all((1, 2, 3))).all()  # something given, something to make
    m, _ = masks.sample_masks(64, 5, 4, 4, {"inpaint": 1.0}, g)
    assert (m == m[:, :1]).all() and (~m).any((1, 2, 3)).all() and m.any((1, 2, 3)).all()  # a box, every frame
    m, modes = masks.sample_masks(2000, 5, 4, 4, {"text": 3.0, "image": 1.0}, g)
    assert abs(modes.count("text") / 2000 - 0.75) < 0.04 and not m[np.array(modes) == "text"].any()


def test_mask_weights_and_resolutions_are_checked():
    with pytest.raises(InputError, match="unknown condition modes"):
        masks.check_weights({"outpaint": 1})
    with pytest.raises(InputError, match="positive sum"):
        masks.check_weights({"image": 0})
    m = torch.zeros(1, 2, 4, 4, dtype=torch.bool)
    m[0, 0, 1, 2] = True
    lat = masks.to_latent(m, 2)
    assert lat.shape == (1, 2, 8, 8) and lat[0, 0, 2:4, 4:6].all() and lat.sum() == 4
    assert torch.equal(masks.to_tokens(lat, 2), m)
    lat[0, 0, 2, 4] = False  # a partly given token is generated whole
    assert not masks.to_tokens(lat, 2).any()


def test_clean_tokens_are_conditioned_as_t_zero():
    torch.manual_seed(0)
    model = create("tiny", latent_channels=4, patch=1).eval()
    for p in model.parameters():  # adaLN-Zero starts at zero: make the timestep matter
        torch.nn.init.normal_(p, std=0.2)
    x, text = torch.randn(2, 4, 3, 4, 4), torch.randn(2, 5, 384)
    t = torch.full((2, 3), 0.7)
    clean = torch.zeros(2, 3, 4, 4, dtype=torch.bool)
    clean[:, 0] = True  # frame 0 given whole: the same as its frame timestep being 0
    t0 = t.clone()
    t0[:, 0] = 0
    assert torch.allclose(model(x, t, text, clean=clean), model(x, t0, text), atol=1e-5)
    clean[:, 1, :2] = True  # half a frame: its clean tokens see t = 0, the rest 0.7
    out = model(x, t, text, clean=clean)
    assert not torch.allclose(out, model(x, t0, text), atol=1e-3)
    with pytest.raises(InputError, match="clean must be"):
        model(x, t, text, clean=clean[:, :2])


# ------------------------------------------------------------------ modes
def _spy(pipe, monkeypatch):
    """Record every latent tensor the sampler returns and the latent frames the model sees."""
    seen = {"frames": [], "z": []}
    forward, denoise = pipe.transformer.forward, pipe._denoise

    def fwd(x, *a, **k):
        seen["frames"].append(x.shape[2])
        return forward(x, *a, **k)

    def den(*a, **k):
        z = denoise(*a, **k)
        seen["z"].append((z, k.get("given"), k.get("clean")))
        return z
    monkeypatch.setattr(pipe.transformer, "forward", fwd)
    monkeypatch.setattr(pipe, "_denoise", den)
    return seen


def test_image_to_video_keeps_the_image_and_its_latent(pipe, clip, monkeypatch):
    seen = _spy(pipe, monkeypatch)
    image = Video(clip.frames[6:7])
    out = pipe.generate("a red circle", image=image, frames=9, steps=3, progress=False, watermark=False)
    z, given, clean = seen["z"][-1]
    keep = masks.to_latent(clean, pipe.transformer.config.patch)[:, None].expand_as(z)
    assert clean[:, 0].all() and not clean[:, 1:].any()
    assert torch.equal(z[keep], given.expand_as(z)[keep])  # sampling never touched the condition latents
    with torch.no_grad():
        roundtrip = pipe._decode(pipe.encode(image, 16, 16), 8.0)[0].frames[0]
    err = np.abs(out.frames[0].astype(int) - roundtrip.astype(int)).max()
    assert err <= 2  # frame 0 is the autoencoder's own round trip of the image (bf16 decode of a longer clip)


def test_keyframes_and_interpolation_fix_their_latent_frames(pipe, clip, monkeypatch):
    seen = _spy(pipe, monkeypatch)
    a, b = Video(clip.frames[:1]), Video(clip.frames[12:13])
    out = pipe.generate("", keyframes={0: a, 5: b}, frames=9, steps=2, progress=False, watermark=False)
    z, given, clean = seen["z"][-1]
    assert clean.all((2, 3)).tolist() == [[True, False, True]]  # frame 5 lives in latent frame 2 (frames 5-8)
    assert torch.equal(z[:, :, [0, 2]], given[:, :, [0, 2]])
    with torch.no_grad():
        rt = pipe._decode(pipe.encode(b, 16, 16), 8.0)[0].frames[0]
    assert np.array_equal(out.frames[5], rt)  # the given frame is shown as the autoencoder's round trip of b
    out = pipe.interpolate(Video(clip.frames[:3]), Video(clip.frames[12:]), frames=9, steps=2, progress=False, watermark=False)
    z, given, clean = seen["z"][-1]
    assert out.num_frames == 9 and clean.all((2, 3)).tolist() == [[True, False, True]]
    assert torch.equal(z[:, :, [0, -1]], given[:, :, [0, -1]])
    with pytest.raises(InputError, match="outside the video's frames 0 ... 8"):
        pipe.generate("", keyframes={9: a}, frames=9, steps=2, progress=False)


def test_masked_edit_keeps_every_untouched_latent_and_strength_zero_is_the_source(pipe, clip, monkeypatch):
    seen = _spy(pipe, monkeypatch)
    mask = np.zeros((16, 16, 3), np.uint8)
    mask[:8, :8] = 255  # top-left quarter: regenerate
    out = pipe.edit(clip, "a blue star", mask=Video(mask), steps=3, progress=False, watermark=False)
    assert np.array_equal(out.frames[:, 8:], clip.frames[:, 8:]) and np.array_equal(out.frames[:, :, 8:], clip.frames[:, :, 8:])
    assert not np.array_equal(out.frames[:, :8, :8], clip.frames[:, :8, :8])  # outside the mask: the source's pixels
    z, given, clean = seen["z"][-1]
    assert not clean[..., 0, 0].any() and clean[..., 1:, :].all() and clean[..., :, 1:].all()  # latent 2x2, patch 1
    keep = masks.to_latent(clean, 1)[:, None].expand_as(z)
    assert torch.equal(z[keep], given[keep]) and not torch.equal(z[~keep], given[~keep])
    video_mask = np.zeros((17, 16, 16, 3), np.uint8)
    video_mask[9:] = 255  # a mask video, frame by frame: regenerate from frame 9 on (latent frames 3 and 4)
    pipe.edit(clip, "a blue star", mask=Video(video_mask), steps=2, progress=False)
    z, given, clean = seen["z"][-1]
    assert clean.all((2, 3)).tolist() == [[True, True, True, False, False]] and not clean[:, 3:].any()
    assert torch.equal(z[:, :, :3], given[:, :, :3])
    with pytest.raises(InputError, match="mask video has 5 frames"):
        pipe.edit(clip, "x", mask=Video(video_mask[:5]), progress=False)
    assert np.array_equal(pipe.edit(clip, "x", strength=0.0, progress=False).frames, clip.frames)
    for bad in (-0.1, 1.5):
        with pytest.raises(InputError, match="strength must be a finite number between 0 and 1"):
            pipe.edit(clip, "x", strength=bad, progress=False)
    with pytest.raises(InputError, match="aspect ratio"):
        pipe.edit(clip, "x", mask=Video(np.zeros((16, 32, 3), np.uint8)), progress=False)
    with pytest.warns(UserWarning, match="resizing the 32x32 mask"):
        pipe.edit(clip, "x", mask=Video(np.full((32, 32, 3), 255, np.uint8)), steps=1, progress=False)


def test_long_extension_runs_one_window_at_a_time(pipe, clip, monkeypatch):
    seen = _spy(pipe, monkeypatch)
    src = Video(clip.frames[:9])
    steps = []
    out = pipe.extend(src, "0s: a red circle; 1s: a blue square", 4.0, frames=9, steps=2, progress=False, watermark=False,
                      on_step=steps.append)
    assert out.num_frames == 9 + 32 and np.array_equal(out.frames[:9], src.frames)
    assert [(i["window"], i["step"]) for i in steps] == [(w, s) for w in range(8) for s in (1, 2)]
    assert {i["windows"] for i in steps} == {8} and {i["steps"] for i in steps} == {2}
    assert max(seen["frames"]) == 3  # 4 new frames a window; the model sees 3 latent frames
    for z, given, clean in seen["z"]:  # each window is conditioned on 2 latent frames of context, kept exactly
        assert clean.all((2, 3)).tolist() == [[True, True, False]] and torch.equal(z[:, :, :2], given[:, :, :2])
    steps.clear()
    long = pipe.generate("a red circle", seconds=3.0, frames=9, steps=2, progress=False, watermark=False, on_step=steps.append)
    assert long.num_frames == 24  # a first window of 9 frames, then 4 windows of 4 new frames (the last cut to 3)
    assert [(i["window"], i["windows"]) for i in steps[::2]] == [(w, 5) for w in range(5)]
    with pytest.raises(InputError, match="seconds must be a finite number in"):
        pipe.extend(src, "x", 601, progress=False)


def test_prompt_schedules():
    s = prompt_schedule("0s: a red ball rolls left; 4s: the camera zooms in; 2.5s: a blue ring")
    assert [t for t, _ in s] == [0, 2.5, 4] and schedule_at(s, 3.0) == "a blue ring" and schedule_at(s, 0) == s[0][1]
    assert prompt_schedule("a red ball; a blue ring") == [(0.0, "a red ball; a blue ring")]  # no times: one prompt
    with pytest.raises(InputError, match="from 0s"):
        prompt_schedule("2s: a red ball")


def test_cli_modes(tmp_path, capsys, run, clip):
    clip.save(tmp_path / "src.mp4")
    Video(clip.frames[:1]).save(tmp_path / "a.png")
    Video(clip.frames[-1:]).save(tmp_path / "b.png")
    common = ["--model", str(run), "--steps", "2", "--json"]
    cases = [["generate", "a red ball", "--image", str(tmp_path / "a.png"), "--last-image", str(tmp_path / "b.png"),
              "--frames", "9"],
             ["generate", "a red ball", "--keyframe", f"4:{tmp_path / 'b.png'}", "--frames", "9", "--seconds", "3"],
             ["extend", str(tmp_path / "src.mp4"), "--prompt", "a red ball", "--seconds", "2", "--frames", "9"],
             ["interpolate", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--frames", "9"],
             ["edit", str(tmp_path / "src.mp4"), "--prompt", "a blue ball", "--mask", str(tmp_path / "a.png")]]
    for i, case in enumerate(cases):
        out = tmp_path / f"out{i}.mp4"
        assert main([*case, *common, "--out", str(out)]) == 0, case
        result = json.loads(capsys.readouterr().out)
        assert out.is_file() and result["peak_memory_mb"] > 0 and result["mode"] == case[0]
    assert result["frames"] == 17  # the edit keeps the source's 17 frames
    bad = [["generate", "x", "--keyframe", "4-b.png"], ["generate", "x", "--keyframe", f"40:{tmp_path / 'b.png'}"],
           ["edit", str(tmp_path / "src.mp4"), "--prompt", "x", "--strength", "2"],
           ["extend", str(tmp_path / "src.mp4"), "--seconds", "1000"],
           ["extend", str(tmp_path / "missing.mp4"), "--seconds", "1"],
           ["interpolate", str(tmp_path / "a.png"), str(tmp_path / "empty.mp4")],
           ["generate", "x", "--guidance-interval", "0.9,0.1"], ["generate", "x", "--guidance-interval", "half"]]
    (tmp_path / "empty.mp4").write_bytes(b"")
    for case in bad:
        try:
            code = main([*case, "--model", str(run), "--out", str(tmp_path / "bad.mp4")])
        except SystemExit as e:  # argparse's usage errors exit from inside the parser
            code = e.code
        assert code == 2, case
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, (case, err)


def test_guidance_interval_guides_only_inside_it(pipe):
    """Guidance applies at times in the interval only: one that holds none of the sampler's times
    gives exactly the unguided video; the model's default interval is used when none is given."""
    kw = dict(frames=5, height=16, width=16, steps=3, seed=1, progress=False, watermark=False)
    unguided = pipe.generate("a red ball", guidance=1.0, **kw).frames
    guided = pipe.generate("a red ball", guidance=6.0, **kw).frames
    assert not np.array_equal(guided, unguided)
    assert np.array_equal(pipe.generate("a red ball", guidance=6.0, guidance_interval=(0, 0), **kw).frames, unguided)
    part = pipe.generate("a red ball", guidance=6.0, guidance_interval=(0, 0.5), **kw).frames
    assert not np.array_equal(part, unguided) and not np.array_equal(part, guided)
    saved = pipe.defaults["guidance_interval"]
    try:
        pipe.defaults["guidance_interval"] = [0.0, 0.5]
        assert np.array_equal(pipe.generate("a red ball", guidance=6.0, **kw).frames, part)
    finally:
        pipe.defaults["guidance_interval"] = saved
    for bad in [(0.5, 0.2), (0, 2), (0.1,)]:
        with pytest.raises(InputError, match="guidance interval"):
            pipe.generate("a red ball", guidance_interval=bad, **kw)


def test_a_compiled_pipeline_makes_the_eager_video(run, clip):
    """Pipeline.compile(): transformer and decoder compiled with frozen weights give the eager
    pipeline's video (within bf16 rounding), and encode (left eager) still works."""
    eager, compiled = load(run), load(run).compile()
    kw = dict(frames=5, height=16, width=16, steps=3, seed=1, progress=False, watermark=False)
    a, b = eager.generate("a red circle moves left", **kw), compiled.generate("a red circle moves left", **kw)
    other = eager.generate("a red circle moves left", **{**kw, "seed": 2})
    diff = np.abs(a.frames.astype(int) - b.frames.astype(int)).mean()
    assert diff < 0.25 * np.abs(a.frames.astype(int) - other.frames.astype(int)).mean()
    assert compiled.encode(clip, 16, 16).shape == eager.encode(clip, 16, 16).shape


def test_the_python_api_refuses_bad_input_before_any_work(pipe, clip, monkeypatch):
    """Every argument of every mode is checked before anything is allocated or generated, with a
    KinemaError naming the valid range: a call over a resource limit fails in well under a second."""
    import time

    from kinema.errors import KinemaError
    from kinema.checks import MAX_SEED, _check_side, check_device
    monkeypatch.setattr(pipe, "_denoise", lambda *a, **k: pytest.fail("sampling started"))
    monkeypatch.setattr(pipe, "_noise", lambda *a, **k: pytest.fail("noise drawn"))
    bad_generate = {
        "empty prompt list": dict(prompt=[]), "prompt not text": dict(prompt=3),
        "prompts not text": dict(prompt=["a", b"b"]), "prompt not UTF-8": dict(prompt="a \udcff"),
        "prompt too long": dict(prompt="x" * 10_001), "too many prompts": dict(prompt=["x"] * 257),
        "frames nan": dict(frames=float("nan")), "frames float": dict(frames=17.0), "frames str": dict(frames="17"),
        "frames huge": dict(frames=4093), "frames bool": dict(frames=True),
        "seed 2**64": dict(seed=2**64), "seed negative": dict(seed=-1), "seed over": dict(seed=MAX_SEED + 1),
        "seed float": dict(seed=0.5), "seeds negative": dict(prompt=["a", "b"], seed=[1, -1]),
        "height nan": dict(height=float("nan")), "height huge": dict(height=4096, width=4096),
        "too many tokens": dict(height=1024, width=1024, frames=5),
        "too many pixels": dict(prompt=["x"] * 200, height=256, width=256),
        "fps inf": dict(fps=float("inf")), "steps zero": dict(steps=0), "steps float": dict(steps=2.0),
        "guidance nan": dict(guidance=float("nan")), "guidance str": dict(guidance="4"),
        "interval nan": dict(guidance_interval=(float("nan"), 1.0)), "sampler": dict(sampler="dpm"),
        "shift nan": dict(shift=float("nan")), "fit": dict(fit="zoom"),
        "image not a Video": dict(image=np.zeros((16, 16, 3), np.uint8)),
        "keyframe index": dict(keyframes={17: clip}), "keyframe key": dict(keyframes={"0": clip}),
        "seconds nan": dict(seconds=float("nan")), "seconds huge": dict(seconds=601),
        "long video too big": dict(seconds=600, fps=240, height=512, width=512, frames=1),
        "long video of a list": dict(prompt=["a"], seconds=2),
    }
    for name, kwargs in bad_generate.items():
        kwargs = {"prompt": "a red ball", "progress": False, **kwargs}
        t0 = time.perf_counter()
        with pytest.raises(KinemaError):
            pipe.generate(kwargs.pop("prompt"), **kwargs)
        assert time.perf_counter() - t0 < 1.0, name
    for call in (lambda: pipe.extend(clip, "x", float("inf"), progress=False),
                 lambda: pipe.extend(clip, "x", 2, context=0, progress=False),
                 lambda: pipe.extend(clip, "x", 2, seed=-1, progress=False),
                 lambda: pipe.extend(clip.frames, "x", 2, progress=False),
                 lambda: pipe.extend(clip, "\udcff", 2, progress=False),
                 lambda: pipe.edit(clip, "x", strength=float("nan"), progress=False),
                 lambda: pipe.edit(clip, "x", seed=2**64, progress=False),
                 lambda: pipe.edit(clip, 5, progress=False),
                 lambda: pipe.interpolate(clip, None, progress=False)):
        with pytest.raises(KinemaError):
            call()
    with pytest.raises(InputError, match="nearest valid: 4096$"):  # never a value over the cap
        _check_side("height", 4112, 16)
    with pytest.raises(InputError, match="nearest valid: 64 or 80$"):
        _check_side("height", 70, 16)
    for device in ("gpu", "cuda:x", "mps", "meta", 3.5):
        with pytest.raises(InputError, match="cpu, cuda or cuda:N"):
            check_device(device)
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA is not available"):
            load(None, device="cuda")
    assert check_device("cpu") == torch.device("cpu")
