"""Lay out the Sphinx sources of the static site in a staging folder.

``make site`` runs ``python docs/stage.py --profile P build/site-src`` and then
``sphinx-build -c docs build/site-src build/site``. The staging folder holds generated copies
only (it lives under ``build/``, never committed):

=========================  ====================================================================
``index.md``               the README (its links rewritten, see :func:`rewrite_links`) + toctree
``claims.md``              ``figures/<profile>/claims.md`` (the first page)
``paper_index.md``         ``figures/<profile>/paper_index.md``, its links rewritten as the README's
``notebooks/NN_*.ipynb``   the executed notebooks ``figures/<profile>/notebooks/NN_topic.ipynb``
``findings.md``, ...       the pages of ``docs/`` the README links (:data:`DOC_PAGES`), links rewritten
``api.md``                 ``docs/api.md`` (autosummary of ``lmc_utils``)
``benchmarks.md``          ``bench/batched_training.md``
``_repo/...``              every other repository file the README links to or shows (downloads,
                           images), at its repository path
=========================  ====================================================================

The README's relative links are written for GitHub (paths in the repository). In the site a link
to the profile's ``claims.md`` or to an executed notebook becomes a link to its page, a notebook's
verdict table (``figures/<profile>/NN_verdicts.md``) a link to that notebook's page (which shows
the table), and any other existing file a download of a copy (``.md`` files are copied as
``.md.txt`` so that Sphinx does not take them for pages). ``LMC_FIGURES_DIR`` moves ``figures/``
as for the runner (:func:`lmc_utils.core.paths.figures_dir`).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from pathlib import Path

from lmc_utils.core.paths import figures_dir

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
LINK = re.compile(r"(!?\[[^\]]*\])\(([^)\s]+)\)")  # [text](target) and ![alt](target)
BENCH = ROOT / "bench" / "batched_training.md"
DOC_PAGES = ("findings", "run_times", "reproducibility", "paper_profile", "package")  # docs/<page>.md, linked by the README


class StageError(RuntimeError):
    """Something the site needs is missing."""


def toctree(caption: str, entries: list[str], maxdepth: int = 1) -> str:
    return "\n".join(["```{toctree}", f":caption: {caption}", f":maxdepth: {maxdepth}", ""]
                     + entries + ["```", ""])


class Stager:
    def __init__(self, profile: str, out: Path):
        self.profile = profile
        self.out = out
        self.figures = figures_dir() / profile
        self.notebooks = sorted((self.figures / "notebooks").glob("[0-9][0-9]_*.ipynb"))
        self.pages = {p.stem for p in self.notebooks}

    def _repo_path(self, target: str) -> Path | None:
        """The file a README link ``target`` names (relative to the repository root), or ``None``."""
        path = (ROOT / target).resolve()
        for base in (ROOT, figures_dir().parent):
            try:
                path.relative_to(base)
            except ValueError:
                continue
            return path if path.is_file() else None
        return None

    def _copy(self, path: Path) -> str:
        """Copy ``path`` under ``_repo/`` (``.md`` as ``.md.txt``); the staged path."""
        try:
            rel = path.relative_to(ROOT)
        except ValueError:
            rel = Path("figures") / path.relative_to(figures_dir())
        if rel.suffix in (".md", ".ipynb"):
            rel = rel.with_name(rel.name + ".txt")
        target = self.out / "_repo" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        return f"_repo/{rel.as_posix()}"

    def rewrite_target(self, target: str) -> str:
        """A README link target as it must read in ``index.md`` of the site."""
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            return target  # a URL, or an anchor in the README itself
        path_part, _, anchor = target.partition("#")
        here = f"figures/{self.profile}/"
        if path_part in (here + "claims.md", here + "paper_index.md"):
            return path_part.removeprefix(here) + (f"#{anchor}" if anchor else "")
        m = re.fullmatch(re.escape(here) + r"notebooks/(\d\d_\w+)\.ipynb", path_part)
        if m and m.group(1) in self.pages:
            return f"notebooks/{m.group(1)}.ipynb"
        m = re.fullmatch(re.escape(here) + r"(\d\d)_verdicts\.md", path_part)
        if m:
            page = next((p for p in sorted(self.pages) if p.startswith(m.group(1) + "_")), None)
            if page:
                return f"notebooks/{page}.ipynb"
        m = re.fullmatch(r"docs/(\w+)\.md", path_part)
        if m and m.group(1) in DOC_PAGES:
            return f"{m.group(1)}.md" + (f"#{anchor}" if anchor else "")
        if path_part == "bench/batched_training.md":
            return "benchmarks.md"
        path = self._repo_path(path_part)
        if path is None:
            raise StageError(f"README.md links to {target!r}, which is not a file of this checkout")
        return self._copy(path)

    def rewrite_links(self, text: str) -> str:
        return LINK.sub(lambda m: f"{m.group(1)}({self.rewrite_target(m.group(2))})", text)

    def page(self, path: Path) -> str:
        """A generated page of the profile's folder (``paper_index.md``) with its links, relative to
        that folder, rewritten as README links are."""
        def target(t: str) -> str:
            if re.match(r"^[a-z][a-z0-9+.-]*:", t) or t.startswith("#"):
                return t
            return os.path.relpath((path.parent / t).resolve(), ROOT).replace(os.sep, "/")
        return LINK.sub(lambda m: f"{m.group(1)}({self.rewrite_target(target(m.group(2)))})",
                        path.read_text(encoding="utf-8"))

    def index(self) -> str:
        text = (ROOT / "README.md").read_text(encoding="utf-8")
        text = re.sub(r"<!--.*?-->\n?", "", text, flags=re.S)  # the claims/times markers
        text = self.rewrite_links(text)
        nav = [toctree("Results", ["claims", "paper_index"] + [f"notebooks/{p.stem}" for p in self.notebooks]),
               toctree("More", list(DOC_PAGES)),
               toctree("Reference", ["api", "benchmarks"], maxdepth=2)]
        note = (f"\n```{{note}}\nThis site shows the **{self.profile}** profile: the claims page and the "
                f"executed notebooks are `figures/{self.profile}/`. Built by `make site PROFILE={self.profile}`; "
                "the notebooks were not re-executed.\n```\n")
        title, _, rest = text.partition("\n")
        return f"{title}\n{note}{rest.rstrip()}\n\n" + "\n".join(nav)

    def run(self) -> list[str]:
        claims = self.figures / "claims.md"
        if not claims.is_file():
            raise StageError(f"{claims} is missing: run `make claims PROFILE={self.profile}` "
                             f"(after `make figures PROFILE={self.profile}`)")
        if not self.notebooks:
            raise StageError(f"no executed notebooks in {self.figures / 'notebooks'}: run "
                             f"`python -m lmc_utils.run --profile {self.profile}` first")
        if self.out.exists():
            shutil.rmtree(self.out)
        (self.out / "notebooks").mkdir(parents=True)
        (self.out / "index.md").write_text(self.index(), encoding="utf-8")
        shutil.copyfile(claims, self.out / "claims.md")
        index = self.figures / "paper_index.md"
        if not index.is_file():
            raise StageError(f"{index} is missing: run `make claims PROFILE={self.profile}`")
        (self.out / "paper_index.md").write_text(self.page(index), encoding="utf-8")
        for nb in self.notebooks:
            shutil.copyfile(nb, self.out / "notebooks" / nb.name)
        for name in DOC_PAGES:
            (self.out / f"{name}.md").write_text(self.page(DOCS / f"{name}.md"), encoding="utf-8")
        shutil.copyfile(DOCS / "api.md", self.out / "api.md")
        shutil.copyfile(BENCH, self.out / "benchmarks.md")
        return (["index", "claims", "paper_index"] + [f"notebooks/{p.stem}" for p in self.notebooks]
                + list(DOC_PAGES) + ["api", "benchmarks"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python docs/stage.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="staging folder (emptied first)")
    parser.add_argument("--profile", default="cpu")
    args = parser.parse_args(argv)
    try:
        pages = Stager(args.profile, args.out.resolve()).run()
    except StageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{args.out}: {len(pages)} pages ({', '.join(pages)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
