"""The static site (``make site``): built from the smoke profile's executed notebooks with -W, then
loaded in headless Chromium.

The browser check injects a small script at the top of each page under test (a copy next to it, so
relative links still resolve) that records console errors, uncaught exceptions and failed loads of
images, scripts and style sheets, and after the page's ``load`` event lists every ``<img>`` with its
``naturalWidth``; Chromium's ``--dump-dom`` returns the DOM with that report in it.

Skipped where Sphinx, MyST-NB or the theme (``pip install -e ".[docs]"``) or a Chromium binary
(Debian: ``apt-get install chromium``) is missing. When ``figures/smoke/notebooks/`` holds no
executed notebooks, one notebook is run at the smoke profile into a temporary figures folder.
"""

from __future__ import annotations

import html
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = "00_rebasin_basics"  # the page checked (and, when none is there, the one notebook run)
SITE_MODULES = ("sphinx", "myst_nb", "sphinx_book_theme")
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

missing = [m for m in SITE_MODULES if importlib.util.find_spec(m) is None]
browser = next((b for b in map(shutil.which, BROWSERS) if b), None)
pytestmark = [
    pytest.mark.skipif(bool(missing), reason=f"site tools not installed ({', '.join(missing)}): "
                       'pip install -e ".[docs]"'),
    pytest.mark.skipif(browser is None, reason="no headless browser: apt-get install chromium"),
]

PROBE = """<script>
(function () {
  var report = {errors: [], images: []};
  var error = console.error;
  console.error = function () {
    report.errors.push("console.error: " + Array.prototype.join.call(arguments, " "));
    return error.apply(console, arguments);
  };
  window.addEventListener("error", function (e) {
    var t = e.target;
    if (t && t !== window && (t.src || t.href)) report.errors.push("failed to load " + (t.src || t.href));
    else report.errors.push("uncaught: " + e.message);
  }, true);
  window.addEventListener("load", function () {
    setTimeout(function () {
      report.images = Array.prototype.map.call(document.images, function (i) {
        return {src: i.getAttribute("src"), complete: i.complete, naturalWidth: i.naturalWidth};
      });
      var pre = document.createElement("pre");
      pre.id = "site-test-report";
      pre.textContent = JSON.stringify(report);
      document.body.appendChild(pre);
    }, 500);
  });
})();
</script>"""


def _env(figures: Path) -> dict[str, str]:
    env = dict(os.environ, LMC_FIGURES_DIR=str(figures), LMC_OFFLINE="1", OMP_NUM_THREADS="1")
    env.pop("LMC_FIGURES_SUFFIX", None)
    return env


@pytest.fixture(scope="session")
def smoke_figures(tmp_path_factory) -> Path:
    """A figures folder with ``smoke/notebooks/*.ipynb`` and ``smoke/claims.md``: a copy of the
    checkout's smoke results where they exist, else notebook ``NOTEBOOK`` run at the smoke profile."""
    base = tmp_path_factory.mktemp("site-figures")
    ours, theirs = base / "smoke", REPO / "figures" / "smoke"
    env = _env(base)
    if list((theirs / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        shutil.copytree(theirs / "notebooks", ours / "notebooks")
        for table in theirs.glob("[0-9][0-9]_verdicts.csv"):
            shutil.copyfile(table, ours / table.name)
    else:
        env.setdefault("LMC_CACHE_DIR", str(tmp_path_factory.mktemp("site-cache")))
        run = subprocess.run([sys.executable, "-m", "lmc_utils.run", "--profile", "smoke", "--threads", "1",
                              NOTEBOOK], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, f"smoke run of {NOTEBOOK} failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    claims = subprocess.run([sys.executable, "-m", "lmc_utils.claims", "--profile", "smoke"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120)
    assert claims.returncode == 0, claims.stderr
    return base


@pytest.fixture(scope="session")
def site(smoke_figures, tmp_path_factory) -> Path:
    """The site built by the commands of ``make site PROFILE=smoke``, into a temporary folder."""
    work = tmp_path_factory.mktemp("site")
    env = dict(_env(smoke_figures), LMC_SITE_PROFILE="smoke")
    stage = subprocess.run([sys.executable, "docs/stage.py", "--profile", "smoke", str(work / "src")], cwd=REPO,
                           env=env, capture_output=True, text=True, timeout=60)
    assert stage.returncode == 0, stage.stderr
    build = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", "-c", "docs",
                            "-d", str(work / "doctrees"), str(work / "src"), str(work / "html")],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert build.returncode == 0, f"sphinx -W failed:\n{build.stdout[-4000:]}\n{build.stderr[-4000:]}"
    return work / "html"


def load(page: Path) -> tuple[str, dict]:
    """The DOM of ``page`` after Chromium loaded it, and the probe's report."""
    probe = page.with_name(page.stem + ".probe.html")
    text = page.read_text(encoding="utf-8")
    probe.write_text(text.replace("<head>", "<head>" + PROBE, 1), encoding="utf-8")
    profile = page.parent / ".chromium-profile"
    cmd = [browser, "--headless=new", "--disable-gpu", "--no-sandbox", "--no-first-run", "--no-default-browser-check",
           f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()]
    for _ in range(3):  # on a loaded machine the probe can miss Chromium's virtual-time budget: load again
        got = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert got.returncode == 0, got.stderr[-3000:]
        dom = got.stdout
        m = re.search(r'<pre id="site-test-report">(.*?)</pre>', dom, re.S)
        if m:
            return dom, json.loads(html.unescape(m.group(1)))
    raise AssertionError(f"the page did not finish loading in the browser (3 tries):\n{got.stderr[-2000:]}")


def assert_rendered(dom: str, report: dict) -> None:
    assert not report["errors"], report["errors"]
    broken = [i["src"] for i in report["images"] if not (i["complete"] and i["naturalWidth"] > 0)]
    assert not broken, f"images that did not load: {broken}"


def test_index_renders(site):
    dom, report = load(site / "index.html")
    assert_rendered(dom, report)
    assert "<h1>lmc-rebasin" in dom
    assert "notebooks/{}.html".format(NOTEBOOK) in dom  # the navigation reaches the notebook page
    assert 'href="claims.html"' in dom
    assert report["images"], "the README's figures are missing from the landing page"
    claims = (site / "claims.html").read_text(encoding="utf-8")  # the verdict tables of every notebook
    assert re.search(r"<th[^>]*>(<p>)?verdict(</p>)?</th>", claims) and "Claims and verdicts (smoke profile)" in claims
    assert "claims at a glance" in dom and "claims at a glance" in claims  # the front page's table, and the profile's


def test_paper_index_and_docs_pages_render(site):
    dom, report = load(site / "paper_index.html")
    assert_rendered(dom, report)
    assert "Qu &amp; Horvath, ICML 2024" in dom and "not reproduced" in dom
    for page in ("findings", "run_times", "reproducibility", "paper_profile", "package"):
        assert (site / f"{page}.html").is_file(), page


def test_notebook_page_has_verdicts_and_figure(site):
    page = site / "notebooks" / f"{NOTEBOOK}.html"
    assert page.exists(), sorted(p.name for p in (site / "notebooks").iterdir())
    dom, report = load(page)
    assert_rendered(dom, report)
    # The notebook's verdicts (figures.publish_verdicts): one line per claim x subject, then the tally.
    section = re.search(r'<section id="verdicts">(.*?)</section>', dom, re.S)
    assert section, "no Verdicts section on the notebook page"
    assert re.search(r"<strong>(held|did not hold|inconclusive)</strong>", section.group(1)), section.group(1)[:2000]
    assert "Tally:" in section.group(1)
    figures = [i for i in report["images"] if "_images/" in (i["src"] or "")]
    assert figures and all(i["naturalWidth"] > 100 for i in figures), report["images"]
