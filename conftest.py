"""Collection rules for the whole repository: the test suite and the docstring examples (``--doctest-modules``)."""

# Importing `python -m adamlab.demo`'s entry point runs the demo; its docstrings live in adamlab.demo.
collect_ignore = ["adamlab/demo/__main__.py", "docs", "benchmarks", "examples", "build"]
