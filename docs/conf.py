"""Sphinx configuration of adamlab's documentation site.

Build (no network needed):  python -m sphinx -W --keep-going -n -b html docs docs/_build/html
"""

from __future__ import annotations

import importlib
import inspect
import os
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
# `single backticks` in docstrings are code (parameter names, expressions), as they read in the source.
default_role = "code"

# Google-style docstrings: Args / Returns / Raises / Example sections.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_preprocess_types = True

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
# The protocol's function types keep their names (documented on the primitives page).
autodoc_type_aliases = {"InitFn": "adamlab.base.InitFn", "UpdateFn": "adamlab.base.UpdateFn"}
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

# Nitpicky mode: every reference into adamlab must resolve. References into other packages that the shipped
# inventories do not list are let through (never adamlab's own).
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(jax|jaxlib|numpy|np|optax|flax|chex|orbax|typing|collections|types)\..*"),
]
if os.environ.get("ADAMLAB_DOCS_ALL_REFERENCES"):  # list every unresolved reference, other packages' too
    nitpick_ignore_regex = []

html_theme = "sphinx_book_theme"
html_title = "adamlab"
html_static_path = ["_static"]
html_css_files = ["adamlab.css"]
html_theme_options = {
    "repository_url": "",
    "use_repository_button": False,
    "show_toc_level": 2,
    "navigation_with_keys": False,
}


# -- adamlab's own names ---------------------------------------------------------------------------------------------

PUBLIC_MODULES = [n for n in adamlab.__all__ if inspect.ismodule(getattr(adamlab, n))]  # flat, sharding, ...


def _public_path(target: str) -> str | None:
    """The documented path of an object that type hints name by its defining module.

    Signatures say ``adamlab.base.GradientTransformation`` (where the class is defined); the reference documents it
    where users import it, ``adamlab.GradientTransformation``. Only names some public ``__all__`` exports qualify.
    """
    if not target.startswith("adamlab."):
        return None
    name = target.rsplit(".", 1)[-1]
    if name in adamlab.__all__:
        return f"adamlab.{name}"
    for mod in PUBLIC_MODULES:
        if name in getattr(importlib.import_module(f"adamlab.{mod}"), "__all__", ()):
            return f"adamlab.{mod}.{name}"
    return None


# Runtime paths of other projects' classes (what a type hint evaluates to) -> the names their sites document.
OUTSIDE_ALIASES = {
    "jax.jaxlib._jax.Array": "jax.Array",
    "jaxlib._jax.Array": "jax.Array",
    "jaxlib._jax.Sharding": "jax.sharding.Sharding",
    "jax._src.mesh.Mesh": "jax.sharding.Mesh",
    "np.dtype": "numpy.dtype",
    "np.ndarray": "numpy.ndarray",
}


def _resolve(app, env, node, contnode):
    """adamlab names by their public path; other projects' classes by their documented name, through intersphinx."""
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    public = _public_path(target)
    if public is not None and public != target:
        domain = env.get_domain("py")
        return domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"], public, node, contnode)
    if target in OUTSIDE_ALIASES:
        from sphinx.ext import intersphinx

        node["reftarget"] = OUTSIDE_ALIASES[target]
        return intersphinx.missing_reference(app, env, node, contnode)
    return None


def _skip_namedtuple_fields(app, what, name, obj, skip, options):
    """NamedTuple fields are described in their class's Attributes section; autodoc would list them a second time."""
    return True if what == "class" and (getattr(obj, "__doc__", None) or "").startswith("Alias for field") else None


def setup(app):
    app.connect("missing-reference", _resolve)
    app.connect("autodoc-skip-member", _skip_namedtuple_fields)
