"""Checks the built documentation site as a reader meets it: served over HTTP, rendered by headless Chromium.

    python -m sphinx -W --keep-going -n -b html docs docs/_build/html
    python docs/check_site.py                      # screenshots in docs/_build/screenshots

What it checks, printing what it saw and exiting 1 on the first page that fails:

- the index renders, and its sidebar links every guide and the API reference;
- every guide and API page loads and has a title;
- the ``adamw`` entry of the reference shows its signature, its Args and a ``>>>`` example;
- Sphinx's JavaScript search finds the ``adamw`` reference for "adamw" and the weight-decay guide for
  "weight decay" (the results are what the browser renders after running the search);
- ``objects.inv`` lists every public name of adamlab.

Chromium is Debian's ``chromium`` package (``apt-get install chromium``); nothing is fetched from the network.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import importlib
import inspect
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import zlib

ROOT = pathlib.Path(__file__).resolve().parent.parent


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve(site: pathlib.Path):
    handler = functools.partial(_Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise SystemExit("check_site: no Chromium found; install Debian's package: apt-get install chromium")


class Browser:
    def __init__(self, binary: str, shots: pathlib.Path):
        self.binary, self.shots = binary, shots
        self.profile = tempfile.mkdtemp(prefix="adamlab-chromium-")

    def _run(self, *args: str) -> str:
        cmd = [
            self.binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            f"--user-data-dir={self.profile}",
            "--virtual-time-budget=15000",
            *args,
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"chromium failed ({done.returncode}): {done.stderr[-2000:]}")
        return done.stdout

    def dom(self, url: str) -> str:
        """The page's DOM after its scripts ran (Sphinx's search fills the results in JavaScript)."""
        return self._run("--dump-dom", url)

    def screenshot(self, url: str, name: str, height: int = 1400) -> pathlib.Path:
        path = self.shots / f"{name}.png"
        self._run(f"--screenshot={path}", f"--window-size=1280,{height}", "--hide-scrollbars", url)
        if not path.exists() or ink(path) < 0.01:
            raise RuntimeError(f"screenshot of {url} is missing or blank")
        return path


def ink(png: pathlib.Path) -> float:
    """The share of pixels that are not near-white: a page that rendered nothing has none."""
    try:
        from matplotlib import image
    except ImportError:  # without matplotlib, a blank 1280-pixel-wide PNG compresses to a few kB
        return 1.0 if png.stat().st_size > 20_000 else 0.0
    rgb = image.imread(png)[..., :3]
    return float((rgb.mean(axis=2) < 0.9).mean())


def public_modules() -> list[str]:
    """The public submodules: those ``adamlab.__all__`` exports (``flat``, ``sharding``, ...)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import adamlab

    return [n for n in adamlab.__all__ if inspect.ismodule(getattr(adamlab, n))]


def public_names() -> set[str]:
    """Every public name: ``adamlab.__all__`` and the ``__all__`` of each public submodule, by full path."""
    import adamlab

    modules = public_modules()
    names = {f"adamlab.{n}" for n in adamlab.__all__ if n not in modules}
    for mod in modules:
        module = importlib.import_module(f"adamlab.{mod}")
        assert hasattr(module, "__all__"), f"adamlab.{mod} defines no __all__"
        names |= {f"adamlab.{mod}.{n}" for n in module.__all__}
    return names


def undocumented(documented: set[str]) -> list[str]:
    """The public names not in `documented`; a name re-exported at the top level (``adamlab.skip_nonfinite``) may be
    documented there instead of under its submodule."""
    return sorted(n for n in public_names() - documented if f"adamlab.{n.rsplit('.', 1)[1]}" not in documented)


def inventory_names(site: pathlib.Path) -> set[str]:
    raw = (site / "objects.inv").read_bytes()
    body = zlib.decompress(raw.split(b"\n", 4)[4]).decode()
    return {line.split(" ", 1)[0] for line in body.splitlines() if line}


def text_of(html: str) -> str:
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def search_results(html: str) -> list[str]:
    """The hrefs of the rendered search results (``<ul class="search">`` items)."""
    block = re.search(r'<ul[^>]*class="search[^"]*"[^>]*>(.*?)</ul>', html, re.S)
    return re.findall(r'href="([^"]+)"', block.group(1)) if block else []


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--site", type=pathlib.Path, default=ROOT / "docs" / "_build" / "html")
    ap.add_argument("--shots", type=pathlib.Path, default=ROOT / "docs" / "_build" / "screenshots")
    args = ap.parse_args(argv)
    if not (args.site / "index.html").exists():
        raise SystemExit(f"check_site: no built site at {args.site}; build it first (see the module docstring)")
    args.shots.mkdir(parents=True, exist_ok=True)
    browser = Browser(find_chromium(), args.shots)
    failures: list[str] = []

    def check(ok: bool, what: str) -> None:
        print(("ok   " if ok else "FAIL ") + what)
        if not ok:
            failures.append(what)

    guides = sorted(p.stem for p in (ROOT / "docs" / "guides").glob("*.md"))
    api_pages = sorted(p.stem for p in (ROOT / "docs" / "api").glob("*.rst"))
    with serve(args.site) as base:
        index = browser.dom(f"{base}/index.html")
        check("<h1>adamlab" in index or ">adamlab<" in index, "index renders its title")
        missing = [g for g in guides if f'href="guides/{g}.html"' not in index]
        check(
            not missing,
            f"the index's sidebar links all {len(guides)} guides" + (f" (missing {missing})" if missing else ""),
        )
        check('href="api/index.html"' in index, "the index's sidebar links the API reference")
        print("     screenshot", browser.screenshot(f"{base}/index.html", "index"))

        for page in [f"guides/{g}" for g in guides] + [f"api/{a}" for a in api_pages]:
            html = browser.dom(f"{base}/{page}.html")
            title = re.search(r"<h1[^>]*>(.*?)</h1>", html, re.S)
            check(
                title is not None and "404" not in text_of(title.group(1)),
                f"{page} renders: " + (text_of(title.group(1)).strip().rstrip("#").strip() if title else "no <h1>"),
            )

        ref = browser.dom(f"{base}/api/optimizers.html")
        entry = ref[ref.find('id="adamlab.adamw"') :]
        entry = entry[: entry.find("</dl>", entry.find("Example"))] if "Example" in entry else entry[:20000]
        words = text_of(entry)
        check('id="adamlab.adamw"' in ref, "api/optimizers has an anchor for adamlab.adamw")
        check(bool(re.search(r"adamw\s*\(\s*learning_rate", words)), "the adamw entry shows its signature")
        check("Parameters" in words and "weight_decay" in words and "mask" in words, "the adamw entry lists its Args")
        check("&gt;&gt;&gt;" in entry or ">>>" in words, "the adamw entry shows a >>> example")
        # adamw opens its page (headless Chromium paints nothing when a screenshot starts at an anchor).
        print("     screenshot", browser.screenshot(f"{base}/api/optimizers.html", "adamw", 1800))

        for query, expected in [
            ("adamw", "api/optimizers.html"),
            ("weight+decay", "guides/weight_decay.html"),
            ("MultiSteps", "guides/from_optax.html"),
        ]:
            url = f"{base}/search.html?q={query}"
            hits = search_results(browser.dom(url))
            shown = ", ".join(h.split("#")[0] for h in hits[:5])
            check(
                any(h.startswith(expected) for h in hits),
                f"search '{query.replace('+', ' ')}': {len(hits)} results, first {shown or 'none'}; expects {expected}",
            )
            print("     screenshot", browser.screenshot(url, f"search-{query.replace('+', '-')}"))

    absent = undocumented(inventory_names(args.site))
    missing = f" (missing {absent})" if absent else ""
    check(not absent, f"objects.inv lists all {len(public_names())} public names{missing}")
    print(f"check_site: {len(failures)} failed" if failures else "check_site: every check passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
