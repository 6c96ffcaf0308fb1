"""claims.md and the README findings block, generated from synthetic verdict tables."""

import os

import pandas as pd
import yaml
import pytest

from lmc_utils.claims import report as claims
from lmc_utils.paths import figures_dir, notebooks_dir, params_dir

COLUMNS = ["notebook", "claim", "subject", "statistic", "estimate", "ci_low", "ci_high", "n", "threshold", "verdict"]
NB0 = [
    ("00_rebasin_basics", "barrier_removed", "mlp_mnist", "barrier", 0.0213, 0.0101, 0.0325, 8, 0.1, "held"),
    ("00_rebasin_basics", "barrier_removed", "vgg11_bn", "barrier", 0.3, 0.2, 0.4, 4, 0.1, "did not hold"),
    ("00_rebasin_basics", "reset_needed", "vgg11_bn", "gain", 0.05, -0.01, 0.11, 4, 0.0, "inconclusive"),
]
NB1 = [
    ("01_distance_taylor", "distance_small", "mlp_mnist", "ratio", 0.17, 0.15, 0.19, 8, 0.5, "held"),
    ("01_distance_taylor", "distance_small", "mlp_fashion", "ratio", 0.6, 0.55, float("inf"), 8, 0.5, "did not hold"),
]


@pytest.fixture
def folder():
    out = figures_dir("cpu")
    out.mkdir(parents=True)
    # written in reverse order: gather sorts by notebook number
    pd.DataFrame(NB1, columns=COLUMNS).assign(direction="less").to_csv(out / "01_verdicts.csv", index=False)
    pd.DataFrame(NB0, columns=COLUMNS).to_csv(out / "00_verdicts.csv", index=False)
    pd.DataFrame({"x": [1]}).to_csv(out / "00_barriers.csv", index=False)  # not a verdict table
    return out


def test_gather_reads_every_verdict_table_in_notebook_order(folder):
    frame = claims.gather(folder)
    assert list(frame.columns[:10]) == COLUMNS and len(frame) == 5
    assert frame["notebook"].tolist() == ["00_rebasin_basics"] * 3 + ["01_distance_taylor"] * 2
    assert claims.tally(frame) == {"held": 2, "did not hold": 2, "inconclusive": 1}


def test_claims_markdown_has_overall_and_per_notebook_tallies(folder):
    text = claims.claims_markdown(claims.gather(folder), "cpu")
    assert "**Overall: 5 verdicts — 2 held, 2 did not hold, 1 inconclusive.**" in text
    assert "| 00_rebasin_basics | 1 | 1 | 1 |" in text and "| 01_distance_taylor | 1 | 1 | 0 |" in text
    assert text.index("## 00_rebasin_basics") < text.index("## 01_distance_taylor")
    assert "| mlp_mnist | 0.0213 [0.0101, 0.0325] | 8 | 0.1 | held |" in text
    assert "| mlp_fashion | 0.6 [0.55, ∞] | 8 | 0.5 | did not hold |" in text
    assert "Tally: 1 held, 1 did not hold, 0 inconclusive." in text


def test_write_creates_claims_md_and_the_readme_block(folder, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# title\n\nintro\n\n<!-- glance:start -->\nstale glance\n<!-- glance:end -->\n\n## after\n")
    assert claims.main(["--profile", "cpu", "--readme", str(readme)]) == 0
    written = (folder / "claims.md").read_text()
    assert written.startswith("# Claims and verdicts (cpu profile)") and "## The papers' claims at a glance" in written
    assert (folder / "paper_index.md").read_text().startswith("# The papers' figures and tables")
    text = readme.read_text()
    assert "stale glance" not in text and "claims of the three works** at the `cpu` profile" in text
    assert text.startswith("# title\n\nintro\n\n<!-- glance:start -->\n") and text.endswith("<!-- glance:end -->\n\n## after\n")
    block = text.split("<!-- glance:start -->\n")[1].split("\n<!-- glance:end -->")[0]
    assert f"[claims.md]({os.path.relpath(folder / 'claims.md', tmp_path)})" in block  # links relative to the README
    assert claims.main(["--profile", "cpu", "--readme", str(readme)]) == 0
    assert readme.read_text() == text  # regenerating is idempotent


def test_readme_without_markers_is_an_error_and_left_unchanged(folder, tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("# no markers here\n")
    assert claims.main(["--profile", "cpu", "--readme", str(readme)]) == 1
    err = capsys.readouterr().err
    assert "<!-- glance:start -->" in err and "absent" in err and str(readme) in err
    assert readme.read_text() == "# no markers here\n"
    assert (folder / "claims.md").exists()  # claims.md is still written
    with pytest.raises(claims.ClaimsError):
        claims.replace_block("<!-- claims:end -->\n<!-- claims:start -->\n", "x")


def test_no_figures_folder_is_an_error(capsys):
    assert claims.main(["--profile", "cpu"]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_the_paper_index_links_the_executed_notebook_where_there_is_one(tmp_path):
    from lmc_utils.claims import paper_index

    place = {"notebook": "01_distance_taylor", "section": "s", "files": ["figures/cpu/01_x.md"], "scale": "MLP"}
    entries = [{"id": "ito2025/t1", "work": "ito2025", "number": "Table 1", "shows": "x", "reproduced_by": [place]},
               {"id": "ito2025/t2", "work": "ito2025", "number": "Table 2", "shows": "y",
                "reproduced_by": [{**place, "notebook": "00_rebasin_basics"}]}]
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "01_distance_taylor.ipynb").write_text("{}")
    (tmp_path / "01_x.md").write_text("table")
    page = paper_index.index_markdown(entries, "cpu", tmp_path)
    assert "[01_distance_taylor](notebooks/01_distance_taylor.ipynb)" in page and "[01_x.md](01_x.md)" in page
    source = os.path.relpath(notebooks_dir() / "00_rebasin_basics.py", tmp_path)
    assert f"[00_rebasin_basics]({source})" in page  # no executed copy: the source


def test_claim_texts_include_a_notebooks_optional_sections(tmp_path, monkeypatch):
    """02_imagenet's claims are 02_singular_vectors' too (the paper-only ImageNet section)."""
    from lmc_utils.claims.report import _claim_texts

    crit = {"statistic": "s", "threshold": 0.0, "direction": "greater", "test": "t"}
    (tmp_path / "criteria.yaml").write_text(yaml.safe_dump({
        "02_singular_vectors": {"a": {**crit, "claim": "own claim"}},
        "02_imagenet": {"b": {**crit, "claim": "imagenet claim"}},
        "03_ste_three_models": {"c": {**crit, "claim": "other notebook"}}}))
    monkeypatch.setenv("LMC_PARAMS_DIR", str(tmp_path))
    assert _claim_texts("02_singular_vectors") == {"a": "own claim", "b": "imagenet claim"}
    assert _claim_texts("03_ste_three_models") == {"c": "other notebook"}


def test_every_claim_of_the_papers_is_one_headline():
    """params/papers.yaml's headlines cover every declared criterion but the sanity checks, once each."""
    from lmc_utils.claims import glance

    criteria = glance.all_criteria()
    headlines = glance.load_headlines(criteria=criteria)
    named = [n for h in headlines for n in h.criteria]
    assert sorted(named) == sorted(n for n, c in criteria.items() if not c.sanity)
    assert 30 <= len(headlines) <= 45 and all(h.claim and h.place for h in headlines)


def test_the_front_page_text_of_every_headline_is_words_not_code_names():
    """The glance table shows each headline's claim, place, paper value and note to a reader: no
    criterion or experiment identifiers (snake_case) there."""
    import re

    from lmc_utils.claims import glance

    headlines = glance.load_headlines(criteria=glance.all_criteria())
    code = re.compile(r"\b[a-z0-9]+_[a-z0-9_]+\b")
    found = {(h.id, field): code.findall(text) for h in headlines
             for field, text in (("claim", h.claim), ("place", h.place), ("paper_value", h.paper_value or ""),
                                 ("note", h.note)) if code.search(text)}
    assert found == {}


def test_headlines_that_miss_or_repeat_a_criterion_are_errors(tmp_path):
    from lmc_utils.claims import glance
    from lmc_utils.claims.verdicts import CriteriaError, parse_criteria

    base = {"statistic": "s", "direction": "less", "threshold": 0.0,
            "paper": {"work": "talk", "place": "slide 1", "value": "1"}}
    criteria = parse_criteria({"a": {**base, "claim": "a"}, "b": {**base, "claim": "b"},
                               "c": {**base, "claim": "c", "sanity": "true by construction"}})
    def check(headlines):
        path = tmp_path / "papers.yaml"
        path.write_text(yaml.safe_dump({"headlines": headlines}))
        return glance.load_headlines(path, criteria)
    one = {"id": "x", "work": "talk", "claim": "x", "place": "slide 1", "criteria": ["a", "b"], "primary": "a"}
    assert [h.id for h in check([one])] == ["x"]
    with pytest.raises(CriteriaError, match=r"no headline for the criteria \['b'\]"):
        check([{**one, "criteria": ["a"]}])
    with pytest.raises(CriteriaError, match="behind two headlines"):
        check([one, {**one, "id": "y"}])
    with pytest.raises(CriteriaError, match="sanity check"):
        check([{**one, "criteria": ["a", "b", "c"]}])
    with pytest.raises(CriteriaError, match="primary"):
        check([{**one, "primary": "c"}])


def test_a_claims_status_counts_only_rows_on_models_at_their_floor():
    from lmc_utils.claims.verdicts import claim_status

    def rows(*verdicts, regime="at floor"):
        return pd.DataFrame({"verdict": list(verdicts), "regime": regime, "n": 8})
    assert claim_status(rows("held", "held")) == "held"
    assert claim_status(rows("held", "inconclusive")) == "held where conclusive"
    assert claim_status(rows("held", "did not hold")) == "depends on the setting"
    assert claim_status(rows("did not hold", "inconclusive")) == "did not hold where conclusive"
    assert claim_status(rows("held", regime="below floor")) == "only on models below floor"
    assert claim_status(rows("held", regime="budget-bound")) == "only with a method stopped by its budget"
    assert claim_status(rows()) == "not run at this profile"


def test_the_paper_index_names_only_existing_files_and_declared_claims():
    """Every figure and table of the index is reproduced (by existing notebooks, criteria and committed
    files) or says why not, and the only reasons are data or hardware a CPU run lacks (CIFAR, ImageNet,
    a GPU) or an extract that does not say what the figure shows."""
    from lmc_utils.claims import glance, paper_index

    entries = paper_index.load_index(criteria=list(glance.all_criteria()))
    assert len(entries) >= 130
    assert paper_index.missing_files(entries) == []
    reasons = {paper_index.reason_of(e) for e in entries} - {None}
    assert reasons <= {"needs CIFAR-10", "needs CIFAR-100", "needs ImageNet", "needs a GPU",
                       "content not in the extract"}, reasons
    unknown = sorted(e["id"] for e in entries if paper_index.reason_of(e) == "content not in the extract")
    assert unknown == ["ito2025/fig1", "ito2025/fig4"]  # "distribution plots" the extract never describes
    works = {e["work"] for e in entries}
    assert works == {"ito2025", "qu_horvath2024", "talk"}


def test_paper_index_rejects_an_entry_without_a_place_or_reason(tmp_path):
    from lmc_utils.claims import paper_index
    from lmc_utils.claims.verdicts import CriteriaError

    entry = {"id": "talk/x", "work": "talk", "number": "slide", "shows": "s", "setting": "", "reproduced_by": []}
    path = tmp_path / "papers.yaml"
    path.write_text(yaml.safe_dump({"index": [entry]}))
    with pytest.raises(CriteriaError, match="either reproduced_by or not_reproduced"):
        paper_index.load_index(path)
    path.write_text(yaml.safe_dump({"index": [{**entry, "not_reproduced": "too hard"}]}))
    with pytest.raises(CriteriaError, match="must start with one of"):
        paper_index.load_index(path)
    path.write_text(yaml.safe_dump({"index": [{**entry, "reproduced_by": [{"notebook": "99_nothing"}]}]}))
    with pytest.raises(CriteriaError, match="is not one of notebooks"):
        paper_index.load_index(path)
    assert paper_index.missing_files([{"id": "a", "reproduced_by": [{"files": ["figures/cpu/nope.png"]}]}]) \
        == ["a: figures/cpu/nope.png"]


def test_side_runs_add_their_verdicts_for_the_claims_they_judge(folder):
    from lmc_utils.claims import glance
    from lmc_utils.claims.verdicts import CriteriaError

    side = folder.parent / "cpu+abc"
    side.mkdir()
    pd.DataFrame(NB1, columns=COLUMNS).to_csv(side / "01_verdicts.csv", index=False)
    frame = claims.gather(folder)
    assert glance.with_side_runs(frame, folder, claims.gather) is frame  # no runs.yaml: the batch alone
    (folder / "runs.yaml").write_text(yaml.safe_dump(
        {"runs": [{"folder": "../cpu+abc", "what": "long run", "claims": ["distance_small"]}]}))
    both = glance.with_side_runs(frame, folder, claims.gather)
    assert len(both) == len(frame) + 2 and "mlp_mnist [long run]" in set(both["subject"])
    (folder / "runs.yaml").write_text(yaml.safe_dump({"runs": [{"folder": "../nowhere", "what": "x", "claims": []}]}))
    with pytest.raises(CriteriaError, match="is not a folder"):
        glance.with_side_runs(frame, folder, claims.gather)
