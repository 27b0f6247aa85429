import pytest
import torch
import torch.nn.functional as F

from kinema.errors import KinemaError
from kinema.models.text import HFTextEncoder, MiniLMEncoder, TextEncoder, load_text_encoder


@pytest.fixture(scope="module")
def encoder():
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")  # anything that tried the network would fail here
    try:
        yield load_text_encoder("minilm")
    finally:
        mp.undo()


def pooled(encoder, prompts):
    states, mask = encoder.encode(prompts)
    return (states * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)


def test_shapes_dtype_and_mask(encoder):
    assert isinstance(encoder, MiniLMEncoder) and encoder.dim == 384
    prompts = ["a red ball", "a small blue square slowly moves to the upper left corner", ""]
    states, mask = encoder.encode(prompts)
    ids = encoder.tokenizer(prompts)["input_ids"]
    lengths = [len(i) for i in ids]
    assert states.shape == (3, max(lengths), 384) and states.dtype == torch.float32
    assert mask.dtype == torch.bool and mask.sum(1).tolist() == lengths
    assert lengths[2] == 2  # "" -> [CLS] [SEP]: a valid (unconditional) prompt
    for i, n in enumerate(lengths):
        assert mask[i, :n].all() and not mask[i, n:].any()
        assert (states[i, n:] == 0).all() and states[i, :n].abs().sum(-1).gt(0).all()
    # token states, not a pooled vector: different per token
    assert not torch.allclose(states[1, 1], states[1, 2])
    # padding does not change the real tokens' states
    alone, _ = encoder.encode(["a red ball"])
    torch.testing.assert_close(alone[0], states[0, : lengths[0]], atol=1e-5, rtol=1e-5)


def test_max_length_truncates(encoder):
    states, mask = encoder.encode(["ball " * 200])
    assert states.shape[1] == encoder.max_length == 64 and mask.all()


def test_semantics(encoder):
    a, b, c = pooled(encoder, ["a red ball moves left", "a crimson circle drifting leftward",
                               "the camera zooms out over a textured background"])
    assert F.cosine_similarity(a, b, dim=0) > F.cosine_similarity(a, c, dim=0) + 0.05


def test_cache_avoids_recomputing(encoder):
    calls = []
    handle = encoder.model.register_forward_hook(lambda m, i, o: calls.append(1))
    try:
        encoder.clear_cache()
        s1, m1 = encoder.encode(["a green star rotates", "a ring grows"])
        assert len(calls) == 2  # each new prompt alone (its states must not depend on its batch)
        s2, m2 = encoder.encode(["a ring grows", "a green star rotates", "a ring grows"])
        assert len(calls) == 2  # all cached
        assert torch.equal(s2[0, : m1[1].sum()], s1[1, : m1[1].sum()]) and torch.equal(s2[2], s2[0])
        assert torch.equal(s2[1], s1[0]) and torch.equal(m2[1], m1[0])
        encoder.encode(["a ring grows", "something new"])
        assert len(calls) == 3
        encoder.clear_cache()  # a prompt's states are the same whatever batch it is first encoded in
        alone = encoder.encode(["a ring grows"])[0][0]
        encoder.clear_cache()
        states, mask = encoder.encode(["a small cyan triangle bounces around on a textured background", "a ring grows"])
        assert torch.equal(states[1, : mask[1].sum()], alone)
    finally:
        handle.remove()


class CountingEncoder(TextEncoder):
    """The cache logic alone: a fake encoder whose states are all ones, one token per character."""

    dim = 4

    def __init__(self, cache_size):
        super().__init__(cache_size)
        self.seen = []

    def _encode(self, prompts):
        self.seen += prompts
        return [torch.ones(len(p) + 1, self.dim) for p in prompts]


def test_cache_is_bounded_lru():
    enc = CountingEncoder(cache_size=3)
    states, mask = enc.encode(["a", "b", "c", "d", "eee"])  # a batch larger than the cache still works
    assert states.shape == (5, 4, 4) and mask.sum(1).tolist() == [2, 2, 2, 2, 4]
    assert list(enc._cache) == ["c", "d", "eee"]
    enc.encode(["c", "a"])  # "c" is refreshed, "a" re-encoded, "d" evicted
    assert enc.seen == ["a", "b", "c", "d", "eee", "a"] and list(enc._cache) == ["eee", "c", "a"]


def test_frozen_and_no_autograd(encoder):
    assert not any(p.requires_grad for p in encoder.parameters())
    encoder.train()
    assert not encoder.training and not encoder.model.training
    states, mask = encoder.encode(["a yellow triangle bounces"])
    assert not states.requires_grad and states.grad_fn is None
    # the returned states are ordinary tensors: usable as input to a layer being trained
    layer = torch.nn.Linear(384, 8)
    layer(states).sum().backward()
    assert layer.weight.grad is not None


def test_missing_model_folder_is_a_clear_error(tmp_path):
    with pytest.raises(KinemaError, match="not found"):
        load_text_encoder(tmp_path / "no-such-model")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{}")
    with pytest.raises(KinemaError, match="could not load"):
        HFTextEncoder(tmp_path / "broken")
