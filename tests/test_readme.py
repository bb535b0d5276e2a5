"""The README's training loop runs as written and trains."""

import contextlib
import io
import pathlib
import re

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def test_readme_training_loop_trains():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    loop = next(b for b in blocks if "def step(" in b)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(loop, "README.md", "exec"), {})
    final = float(out.getvalue().split("final loss")[1])
    assert final < 0.05, out.getvalue()


def test_readme_test_command_is_what_ci_runs():
    ci = (README.parent / ".ci" / "run").read_text()
    command = "pip install -e '.[test]' && ruff check . && ruff format --check . && pyright && pytest"
    assert command in README.read_text() and command in ci


def test_readme_python_blocks_run_in_order():
    """Every Python block of the landing page runs, top to bottom, as a reader pastes them."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 2
    namespace: dict = {}
    with contextlib.redirect_stdout(io.StringIO()):
        for i, block in enumerate(blocks):
            exec(compile(block, f"README.md (block {i + 1})", "exec"), namespace)
    assert isinstance(namespace["params"], dict)
