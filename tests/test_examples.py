"""The README's promise: each component dropped into a plain training loop trains."""

import importlib.util
from pathlib import Path

import pytest

spec = importlib.util.spec_from_file_location(
    "train_gaussians", Path(__file__).resolve().parents[1] / "examples" / "train_gaussians.py")
example = importlib.util.module_from_spec(spec)
spec.loader.exec_module(example)


@pytest.mark.parametrize("technique", example.TECHNIQUES)
def test_each_technique_trains_in_a_plain_loop(technique):
    result = example.train(technique, steps=250, batch=64)
    assert result["mmd_after"] < 0.9 * result["mmd_before"]
    assert result["d_updates"] > 0 and result["g_updates"] > 0
    if technique == "adaptive":
        assert result["d_updates"] + result["g_updates"] == 250  # one network per iteration
