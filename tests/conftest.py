import os
import tempfile

import numpy as np
import pytest

from kinema.data.synthetic import SyntheticClips

# the encoding cache of folder data (kinema.data.cache) in a folder of this session, not ~/.cache
os.environ["KINEMA_CACHE"] = tempfile.mkdtemp(prefix="kinema-cache-")
# kinema's local signing CA (C2PA manifests) in a folder of this session, not ~/.config
os.environ["KINEMA_CONFIG"] = tempfile.mkdtemp(prefix="kinema-config-")


@pytest.fixture(scope="session")
def clip():
    """A 17-frame 64x64 procedural clip (moving objects, sharp coloured edges)."""
    return SyntheticClips("train", seed=0)[3]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)
