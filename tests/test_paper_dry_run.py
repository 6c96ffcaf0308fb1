"""The paper profile's dry run (:mod:`lmc_utils.dry_run`) of every notebook, one test per notebook,
so a paper config or a paper-only code path can never break silently: ``make test`` runs them,
except the seven marked ``heavy_dry_run`` (``make dry-run`` runs every notebook's).

Each notebook's test is a class of its own, so that pytest-xdist (``--dist loadscope``, as
``make test`` runs it) can run them beside the rest of the suite. ``make dry-run`` runs the same
dry runs from the command line."""

from pathlib import Path

import pytest

from lmc_utils.run import runner as run
from lmc_utils.paths import cache_dir, figures_dir

from conftest import needs_mnist

NOTEBOOKS = [p.stem for p in run.discover()]
# Dry runs of minutes each on one core (VGG16s at every variant, width and learning rate): marked
# ``heavy_dry_run``, which ``make test`` leaves to ``make dry-run`` to keep within its 15 minutes.
HEAVY = {"02_singular_vectors", "03_ste_three_models", "04_renormalisation", "05_pruning", "07_same_basin",
         "09_width_clusters", "10_regime_ladder"}


def _snapshot(folder: Path) -> set:
    return {(p.relative_to(folder), p.stat().st_mtime_ns) for p in folder.rglob("*")} if folder.exists() else set()


def _dry_run(stem: str, tmp_path) -> None:
    """The dry run finishes, its verdict table is in the dry-run folder, and neither the user's
    figures (``figures/paper/``) nor the user's model cache (``LMC_CACHE_DIR``) change."""
    user_cache, user_figures = cache_dir(), figures_dir("paper")  # tmp folders (conftest)
    repo_figures = run.PACKAGE_DIR.parent / "figures" / "paper"
    before = _snapshot(repo_figures), _snapshot(user_cache), _snapshot(user_figures)
    root = tmp_path / "dry-run"
    rows = run.dry_run("paper", [stem], threads=1, root=root)
    assert [(r["notebook"], r["status"]) for r in rows] == [(stem, "ok")], rows
    assert (root / "figures" / "paper" / f"{stem[:2]}_verdicts.csv").exists()
    assert (_snapshot(repo_figures), _snapshot(user_cache), _snapshot(user_figures)) == before


def _case(stem: str) -> type:
    @needs_mnist
    def test_paper_profile_dry_run(self, tmp_path):
        _dry_run(stem, tmp_path)

    if stem in HEAVY:
        test_paper_profile_dry_run = pytest.mark.heavy_dry_run(test_paper_profile_dry_run)

    return type(f"TestPaperDryRun_{stem}", (), {"test_paper_profile_dry_run": test_paper_profile_dry_run,
                                                 "__doc__": f"The paper profile's dry run of {stem}."})


for _stem in NOTEBOOKS:
    globals()[f"TestPaperDryRun_{_stem}"] = _case(_stem)


def test_every_notebook_has_a_dry_run_test():
    assert sorted(n for n in globals() if n.startswith("TestPaperDryRun_")) == \
        sorted(f"TestPaperDryRun_{s}" for s in NOTEBOOKS) and len(NOTEBOOKS) >= 10
