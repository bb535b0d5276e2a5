"""Sphinx configuration of adamlab's documentation site.

Build (no network needed):  python -m sphinx -W --keep-going -n -b html docs docs/_build/html
"""

from __future__ import annotations

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import adamlab  # noqa: E402

project = "adamlab"
author = "the adamlab developers"
copyright = "2026, the adamlab developers"
release = version = adamlab.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx.ext.intersphinx",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "_inventories", "Thumbs.db", ".DS_Store"]
root_doc = "index"

# Google-style docstrings: Args / Returns / Raises / Example sections.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_preprocess_types = True

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"exclude-members": "count, index, _asdict, _make, _replace, _fields, _field_defaults"}
add_module_names = False
python_use_unqualified_type_names = True

myst_enable_extensions = ["colon_fence", "deflist", "dollarmath"]
myst_heading_anchors = 3

# Other projects' objects link out through inventories shipped in docs/_inventories (these machines have no
# network at build time); see docs/_inventories/make_inventories.py.
_INV = ROOT / "docs" / "_inventories"
intersphinx_mapping = {
    "python": ("https://docs.python.org/3", str(_INV / "python.inv")),
    "numpy": ("https://numpy.org/doc/stable", str(_INV / "numpy.inv")),
    "jax": ("https://docs.jax.dev/en/latest", str(_INV / "jax.inv")),
    "optax": ("https://optax.readthedocs.io/en/latest", str(_INV / "optax.inv")),
    "flax": ("https://flax.readthedocs.io/en/latest", str(_INV / "flax.inv")),
}
intersphinx_disabled_reftypes = ["*"]

# Nitpicky mode: every reference into adamlab must resolve. References into other packages that the shipped
# inventories do not list are let through (never adamlab's own).
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(jax|jaxlib|numpy|np|optax|flax|chex|orbax|typing|collections|types)\..*"),
]

html_theme = "sphinx_book_theme"
html_title = "adamlab"
html_static_path: list[str] = []
html_theme_options = {
    "repository_url": "",
    "use_repository_button": False,
    "show_toc_level": 2,
    "navigation_with_keys": False,
}
