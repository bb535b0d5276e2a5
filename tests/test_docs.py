"""The documentation site: every guide's Python code runs as written, and every public name is in the reference."""

import contextlib
import importlib
import importlib.util
import io
import pathlib
import re

import pytest

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"
GUIDES = sorted((DOCS / "guides").glob("*.md"))


def _load_check_site():
    spec = importlib.util.spec_from_file_location("check_site", DOCS / "check_site.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check_site = _load_check_site()  # the site checker's list of public names, which the built reference must hold


def python_blocks(path: pathlib.Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", path.read_text(), re.S | re.M)


@pytest.mark.parametrize("page", GUIDES, ids=[p.stem for p in GUIDES])
def test_guide_code_runs(page, tmp_path, monkeypatch):
    """The code blocks of a page run top to bottom in one namespace, as a reader pastes them."""
    blocks = python_blocks(page)
    if not blocks:
        pytest.skip(f"{page.name} has no Python code")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    for i, block in enumerate(blocks):
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(block, f"{page.name} (block {i + 1})", "exec"), namespace)


def documented_names() -> set[str]:
    names = set()
    for rst in (DOCS / "api").glob("*.rst"):
        text = rst.read_text()
        names |= set(re.findall(r"^\.\. auto(?:function|class|exception|data)::\s*(\S+)", text, re.M))
        for mod in re.findall(r"^\.\. automodule::\s*(\S+)\n   :members:", text, re.M):
            names |= {f"{mod}.{n}" for n in importlib.import_module(mod).__all__}
    return names


def test_every_public_name_is_in_the_reference():
    missing = check_site.undocumented(documented_names())
    assert not missing, f"not in docs/api: {missing}"
