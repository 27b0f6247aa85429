"""The simple clip reader used by the adherence benchmark: it must read real clips right."""

import numpy as np
import pytest

from kinema.data.synthetic import COLORS, DIRECTIONS, SHAPES, SIZES, TRAVEL, render
from kinema.evaluate import read_clip


@pytest.mark.parametrize("motion", [*DIRECTIONS, "still"])
def test_reader_recovers_colour_and_direction_of_real_clips(motion):
    for i, color in enumerate(COLORS):
        attrs = {"objects": [{"shape": ["circle", "star", "square"][i % 3], "color": color, "size": "medium",
                              "motion": motion, "speed": None if motion == "still" else "slow"}],
                 "num_objects": 1, "camera": "static", "background": ["plain", "gradient", "textured"][i % 3]}
        r = read_clip(render(attrs, np.random.default_rng(i), 17, 64, 64, 8.0))
        assert (r["color"], r["direction"]) == (color, motion)
        ux, uy = np.array(DIRECTIONS.get(motion, (0, 0))) / np.hypot(*DIRECTIONS.get(motion, (1, 0)))
        expected = 0.0 if motion == "still" else TRAVEL["slow"] * 2.0  # 17 frames at 8 fps: 2 seconds
        assert abs(r["travel"][0] * ux + r["travel"][1] * uy - expected) < 0.03


@pytest.mark.parametrize("shape", SHAPES)
def test_reader_recovers_the_shape_of_real_clips(shape):
    for i, (size, color) in enumerate((s, c) for s in SIZES for c in COLORS):
        attrs = {"objects": [{"shape": shape, "color": color, "size": size, "motion": list(DIRECTIONS)[i % 8],
                              "speed": "fast"}],
                 "num_objects": 1, "camera": "static", "background": ["plain", "gradient", "textured"][i % 3]}
        assert read_clip(render(attrs, np.random.default_rng(i), 17, 64, 64, 8.0))["shape"] == shape


def test_reader_says_none_for_an_empty_clip():
    assert read_clip(np.full((5, 32, 32, 3), 90, np.uint8))["color"] is None
