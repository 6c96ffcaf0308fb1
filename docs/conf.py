"""Sphinx configuration of the static site (``make site``; see docs/stage.py for the pages).

Built from a staging folder: ``sphinx-build -W -c docs build/site-src build/site``. The executed
notebooks are rendered as they are (``nb_execution_mode = "off"``): the site never runs a notebook,
and the build needs no network.
"""

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))  # lmc_utils from this checkout, for autodoc

project = "lmc-rebasin"
author = "lmc-rebasin contributors"
copyright = "lmc-rebasin contributors, MIT licensed"

extensions = [
    "myst_nb",  # Markdown (MyST) pages and .ipynb notebooks; includes myst_parser
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",  # "Args:/Returns:" sections in a few docstrings
]

templates_path = [str(DOCS / "_templates")]
html_static_path = [str(DOCS / "_static")]
html_css_files = ["site.css"]
exclude_patterns = ["_build", "_repo", "**.ipynb_checkpoints", "jupyter_execute"]

# Notebooks: shown as executed by the runner (figures/<profile>/notebooks/), never re-executed.
nb_execution_mode = "off"
nb_merge_streams = True
nb_render_markdown_format = "myst"  # display(Markdown(...)) outputs hold GFM tables; "commonmark" has none
myst_heading_anchors = 3  # the README's [Data](#data) links
myst_enable_extensions = ["colon_fence"]

# API reference from the docstrings. The heavy dependencies are mocked: autodoc only needs the
# names, and the site's environment need not have torch (module-level code that *runs* numpy,
# pandas, matplotlib or yaml still needs them installed).
autosummary_generate = True
autodoc_mock_imports = ["torch", "torchvision", "scipy", "sklearn", "papermill", "nbformat", "jupytext",
                        "tqdm", "IPython", "ipywidgets"]
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"

html_theme = "sphinx_book_theme"
html_title = f"lmc-rebasin ({os.environ.get('LMC_SITE_PROFILE', 'cpu')} profile)"
html_theme_options = {
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "use_download_button": False,
    "use_fullscreen_button": False,
}
# Explicit, or the theme's start-up script logs "Got invalid theme mode" on a first visit; light,
# as the figures are drawn on white.
html_context = {"default_mode": "light"}
html_show_sourcelink = False
html_copy_source = False  # no _sources/ copies of every page
html_last_updated_fmt = None

suppress_warnings = []
