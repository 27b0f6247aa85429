"""Provenance: signed C2PA manifests (local CA, trust, tampering) and the invisible watermark."""

import numpy as np
import pytest

from kinema.data.synthetic import SyntheticClips
from kinema.video import Video


@pytest.fixture
def config(tmp_path, monkeypatch):
    monkeypatch.setenv("KINEMA_CONFIG", str(tmp_path / "config"))
    return tmp_path / "config"


def test_signed_outputs_read_trusted_and_a_changed_byte_is_caught(tmp_path, config):
    from kinema.provenance import c2pa as cp
    v = SyntheticClips("heldout", 0, 9, 64, 64, 8.0)[0].video
    info = {"model": "default", "weights": "ab" * 8, "mode": "generate", "seed": 1, "steps": 8, "guidance": 4.0}
    for name, video in (("x.mp4", v), ("x.gif", v), ("x.png", Video(v.frames[:1]))):
        video.save(tmp_path / name)
        assert cp.sign(tmp_path / name, info)
        r = cp.read(tmp_path / name)
        assert r["trusted"] and r["generated"] and r["generation"]["seed"] == 1 and r["failures"] == []
        assert not cp.read(tmp_path / name, trust=[])["trusted"]  # without kinema's CA: valid, untrusted
    key = (config / "signing" / "signer.key").stat().st_mode & 0o777
    assert key == 0o600
    data = bytearray((tmp_path / "x.mp4").read_bytes())
    data[data.find(b"mdat") + 200] ^= 0xFF
    (tmp_path / "x.mp4").write_bytes(bytes(data))
    r = cp.read(tmp_path / "x.mp4")
    assert not r["valid"] and "assertion.bmffHash.mismatch" in r["failures"]
    v.save(tmp_path / "x.webm")
    assert not cp.sign(tmp_path / "x.webm", info)  # the C2PA SDK does not take WebM


def test_the_watermark_reads_back_and_an_unmarked_clip_does_not(tmp_path):
    from kinema.provenance import watermark as wm
    assert wm.false_positive_rate() < 1e-6
    x = SyntheticClips("heldout", 0, 17, 64, 64, 8.0)[1].frames
    y = wm.embed(x, 0xC0FFEE12)
    d = wm.detect(y)
    assert d["detected"] and d["payload"] == 0xC0FFEE12
    assert not wm.detect(x)["detected"]


def test_kinema_detect_reads_both_marks_and_says_when_there_are_none(tmp_path, capsys):
    import json

    from kinema.cli import main
    from kinema.provenance import add_watermark, sign
    v = SyntheticClips("heldout", 0, 17, 64, 64, 8.0)[2].video
    add_watermark(v, 0xBEEF0042).save(tmp_path / "marked.mp4")
    assert sign([tmp_path / "marked.mp4"], {"model": "test", "mode": "generate", "seed": 3})
    v.save(tmp_path / "plain.mp4")
    assert main(["detect", str(tmp_path / "marked.mp4"), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)["files"][0]
    assert r["manifest"]["trusted"] and r["manifest"]["generation"]["seed"] == 3
    assert r["watermark"]["detected"] and r["watermark"]["model_id"] == 0x0042 and r["watermark"]["serial"] == 0xBEEF
    assert main(["detect", str(tmp_path / "plain.mp4")]) == 1
    assert "no manifest; no watermark" in capsys.readouterr().out
    assert main(["detect", str(tmp_path / "missing.mp4")]) == 2


# what docs/PROVENANCE.md measures (96 clips): detected and read in >= 99% of clips, detected in >= 99%
# (the payload read in 99%), and neither (re-encoded after a 0.5x downscale or a trim, and a crop)
UNCLAIMED = {"downscale 0.5x + CRF 28", "crop 10%", "crop 10% + CRF 28", "first second + CRF 28"}
DETECTED_ONLY = {"contrast +20% + CRF 28"}


@pytest.mark.parametrize("size", [64, 128])
def test_the_watermark_survives_each_attack_it_claims_to(size):
    """The attacks of benchmarks/provenance.py at a small size, each alone and re-encoded at CRF 28,
    as docs/PROVENANCE.md reports them; none may read a wrong payload."""
    from kinema.provenance import watermark as wm
    from kinema.provenance.attacks import attacks, reencode
    payload = 0x5EED0000 + size
    if size == 64:  # as the benchmark: the shipped model's own outputs at 64, procedural clips at 128
        import kinema
        clip = kinema.load().generate("a red circle moves left", seed=5, progress=False, watermark=False)
    else:
        clip = SyntheticClips("heldout", 3, 17, size, size, 8.0)[1]
    x = wm.embed(clip.frames, payload)
    missed = []
    for name, attack in attacks(8.0).items():
        for again in (False, True):
            y = attack(x)
            d = wm.detect(reencode(y, 8.0) if again else y)
            label = {"none": "CRF 28"}.get(name, name + " + CRF 28") if again else name
            assert d["payload"] in (None, payload), label  # never a wrong payload (the CRC)
            if label not in UNCLAIMED and not (d["detected"] and (label in DETECTED_ONLY or d["payload"] == payload)):
                missed.append(label)
    assert not missed


def test_every_mode_of_the_python_api_marks_its_frames_by_default():
    import kinema
    from kinema.errors import InputError
    from kinema.provenance import model_id
    from kinema.provenance import watermark as wm
    pipe = kinema.load()
    kw = dict(frames=9, steps=2, seed=3, progress=False)
    a = pipe.generate("a red circle moves left", **kw)
    d = wm.detect(a.frames)
    assert d["detected"] and d["payload"] & 0xFFFF == model_id(pipe)[1]  # this model's id + a serial
    assert np.array_equal(pipe.generate("a red circle moves left", **kw).frames, a.frames)  # same call, same frames
    own = pipe.generate("a red circle moves left", **kw, watermark=0xC0FFEE12)
    assert wm.detect(own.frames)["payload"] == 0xC0FFEE12
    plain = pipe.generate("a red circle moves left", **kw, watermark=False)
    assert not wm.detect(plain.frames)["detected"]
    two = pipe.generate(["a red circle", "a blue square"], frames=9, steps=2, seed=[1, 2], progress=False,
                        watermark=[7, None])
    assert wm.detect(two[0].frames)["payload"] == 7 and not wm.detect(two[1].frames)["detected"]
    for made in (pipe.edit(plain, "a blue square", steps=2, progress=False),
                 pipe.extend(plain, "a blue square", 1.0, steps=2, progress=False),
                 pipe.interpolate(plain, Video(plain.frames[-1:]), "a blue square", frames=9, steps=2,
                                  progress=False)):
        assert wm.detect(made.frames)["detected"]
    assert np.array_equal(pipe.edit(plain, "x", strength=0.0, progress=False).frames, plain.frames)  # nothing made
    for bad in (2 ** 32, -1, "yes", [1, 2, 3]):
        with pytest.raises(InputError):
            pipe.generate("a red circle", **kw, watermark=bad)
