"""docs/TESTING.md's example runs as written: its first Python block is executed and its tests called."""

import ast
import inspect
import linecache
import pathlib
import re

import pytest

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "TESTING.md"


def _example_namespace():
    text = DOC.read_text()
    block = re.search(r"```python\n(.*?)```", text, flags=re.S)
    assert block is not None, "docs/TESTING.md has no python block"
    source = block.group(1)
    line = text.count("\n", 0, block.start(1)) + 1
    # The block's code gets a file name of its own whose lines are the block alone: anything that reads a
    # function's source back (inspect, hypothesis, pytest's tracebacks) then reads Python at the right line,
    # not the Markdown around it, whatever the Python version's tokenizer makes of Markdown.
    name = f"<{DOC.name}: python block at line {line}>"
    linecache.cache[name] = (len(source), None, source.splitlines(True), name)
    namespace: dict = {}
    exec(compile(ast.parse(source, name), name, "exec"), namespace)  # noqa: S102 - our own documentation
    return namespace


NAMESPACE = _example_namespace()
TESTS = sorted(name for name in NAMESPACE if name.startswith("test_"))


def test_the_example_defines_tests():
    assert TESTS == ["test_library_case1_is_orthogonal_to_the_fake_gradient", "test_the_variant_breaks_case1_orthogonality",
                     "test_variant_keeps_weights_finite"]


@pytest.mark.parametrize("name", [*TESTS, "my_aw_weights"])
def test_each_functions_source_reads_back_as_its_definition(name):
    function = inspect.unwrap(NAMESPACE[name])
    source = inspect.getsource(function)
    tree = ast.parse(source)  # the whole definition, decorators included, and nothing else
    assert [type(node) for node in tree.body] == [ast.FunctionDef] and tree.body[0].name == name


@pytest.mark.parametrize("name", TESTS)
def test_example(name):
    NAMESPACE[name]()
