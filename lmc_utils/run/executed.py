"""Executed notebooks for readers: ``figures/<profile>/notebooks/NN_topic.ipynb``.

The notebooks under ``notebooks/`` carry no outputs (their diffs stay small); after a run the
runner writes each executed notebook, with its figures, tables and verdicts, next to the profile's
figures, so a reader can open the results without running anything. What changes from run to run
although the numbers do not is removed, so a rerun that gives the same numbers gives no diff:

* Papermill's timings and timestamps (``metadata.papermill`` of the notebook and of every cell),
  the kernel's execution timestamps (``metadata.execution``);
* progress bars: widget outputs (``application/vnd.jupyter.widget-view+json``, whose state is not
  saved, so they render as nothing anyway, and whose ids are random) and text progress bars
  (stream lines redrawn with carriage returns);
* the random id Papermill gives the injected-parameters cell (it becomes ``injected-parameters``);
* the jupytext pairing (``metadata.jupytext``): the copy is a result to read, not a source to edit;
* absolute paths in warnings (this project's and installed packages' files are named relatively).
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path

import nbformat

from ..core.atomic import write_text
from ..core.paths import project_root

WIDGET = "application/vnd.jupyter.widget-view+json"
VOLATILE_CELL_METADATA = ("papermill", "execution")
VOLATILE_NOTEBOOK_METADATA = ("papermill", "widgets", "jupytext")
FOLDER = "notebooks"


def _relative_paths(text: str) -> str:
    """Warnings name their files by absolute paths, which differ between checkouts and machines:
    files of this project become relative to its root, installed packages relative to their
    ``site-packages``."""
    text = text.replace(str(project_root()) + os.sep, "")
    return re.sub(r"(?:[A-Za-z]:)?[^\s:\"']*[/\\]site-packages[/\\]", "", text)


def _clean_output(output: dict) -> dict | None:
    """``output`` without progress bars (``None`` when nothing else is left)."""
    if output.get("output_type") in ("display_data", "execute_result") and WIDGET in output.get("data", {}):
        return None
    if output.get("output_type") == "stream":
        text = output.get("text", "")
        lines = re.split(r"(?<=\n)", text)  # at newlines only: a progress bar redraws itself with "\r"
        text = "".join(line for line in lines if "\r" not in line)
        if not text:
            return None
        output["text"] = _relative_paths(text)
    return output


def clean(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of an executed ``notebook`` without its run-to-run volatile parts (see the module)."""
    nb = copy.deepcopy(notebook)
    for key in VOLATILE_NOTEBOOK_METADATA:
        nb.metadata.pop(key, None)
    for cell in nb.cells:
        for key in VOLATILE_CELL_METADATA:
            cell.metadata.pop(key, None)
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell["id"] = "injected-parameters"
        if cell.cell_type == "code":
            cell.outputs = [o for o in (_clean_output(o) for o in cell.outputs) if o is not None]
    return nb


def publish(executed: str | Path, folder: str | Path) -> Path:
    """Write the cleaned copy of the executed notebook ``executed`` into ``folder/notebooks/``
    (atomically); returns its path."""
    executed = Path(executed)
    nb = clean(nbformat.read(executed, as_version=4))
    target = Path(folder) / FOLDER / executed.name
    target.parent.mkdir(parents=True, exist_ok=True)
    write_text(target, nbformat.writes(nb) + "\n")
    return target
