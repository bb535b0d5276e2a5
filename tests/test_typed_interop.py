"""The typed interop script runs (CI also type-checks it with pyright against the installed wheel)."""

import contextlib
import io
import pathlib
import runpy

SCRIPT = pathlib.Path(__file__).resolve().parent / "typed_interop.py"


def test_typed_interop_script_runs():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        runpy.run_path(str(SCRIPT), run_name="__main__")
    assert "every path ran" in out.getvalue()
