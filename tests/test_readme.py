"""Every Python block of README.md runs as written, top to bottom in one namespace (as a reader would paste them).

A block that is only a fragment must be marked with ``<!-- not run -->`` on the line before its fence;
README.md has none today, and the test below says which blocks ran so a marker cannot hide one silently.
"""

import pathlib
import re
import warnings

import torch

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", flags=re.S | re.M)


def python_blocks(text: str) -> list[tuple[int, str, bool]]:
    """``(first line, code, marked not-run)`` for each fenced Python block."""
    blocks = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        before = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        blocks.append((line + 1, match.group(1), before.strip() == "<!-- not run -->"))
    return blocks


def test_every_readme_python_block_runs_in_order():
    blocks = python_blocks(README.read_text())
    assert len(blocks) >= 10, "README.md lost its examples"
    skipped = [line for line, _, not_run in blocks if not_run]
    assert skipped == [], f"README blocks marked not run (lines {skipped}): make them runnable"
    namespace: dict = {"__name__": "readme"}
    torch.manual_seed(0)
    with warnings.catch_warnings():
        # The toy D mixes no samples: the one-backward path of from_outputs must apply without a warning.
        warnings.simplefilter("error", RuntimeWarning)
        for line, code, _ in blocks:
            # Padding keeps the line numbers of a traceback those of README.md.
            exec(compile("\n" * (line - 1) + code, str(README), "exec"), namespace)  # noqa: S102 - our own docs
    aw, wg, sched = namespace["aw"], namespace["wg"], namespace["sched"]
    assert aw.steps == 2 and 1 <= int(aw.last.case) <= 5
    assert 1.0 <= float(wg.effective_sample_size) <= 64.0
    # one decision per batch of its loop, and the one the TTUR block asks for
    assert sched.iteration == 5 and sum(sched.counts.values()) == 6
    assert namespace["fa"].steps == 1


def test_a_marked_fragment_is_reported():
    text = "x\n<!-- not run -->\n```python\nundefined_name\n```\n```python\nok = 1\n```\n"
    assert [(line, not_run) for line, _, not_run in python_blocks(text)] == [(4, True), (7, False)]
