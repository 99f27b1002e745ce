"""docs/TESTING.md's example runs as written: its first Python block is executed and its tests called."""

import pathlib
import re

import pytest

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "TESTING.md"


def _example_namespace():
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert blocks, "docs/TESTING.md has no python block"
    namespace: dict = {}
    exec(compile(blocks[0], str(DOC), "exec"), namespace)  # noqa: S102 - our own documentation
    return namespace


NAMESPACE = _example_namespace()
TESTS = sorted(name for name in NAMESPACE if name.startswith("test_"))


def test_the_example_defines_tests():
    assert TESTS == ["test_library_case1_is_orthogonal_to_the_fake_gradient", "test_the_variant_breaks_case1_orthogonality",
                     "test_variant_keeps_weights_finite"]


@pytest.mark.parametrize("name", TESTS)
def test_example(name):
    NAMESPACE[name]()
