"""Executed notebooks for readers (lmc_utils.executed) and kernels over IPC (lmc_utils.run)."""

import tempfile
from pathlib import Path

import nbformat
import papermill

from lmc_utils import executed
from lmc_utils.run import runner as run
from lmc_utils.paths import figures_dir


def _executed_notebook(seconds: float, widget_id: str, injected_id: str) -> nbformat.NotebookNode:
    """What Papermill writes, with the run-to-run volatile parts set from the arguments."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["papermill"] = {"duration": seconds, "start_time": f"2026-12-01T12:00:{seconds:02.0f}"}
    nb.metadata["jupytext"] = {"formats": "ipynb,py:percent"}
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {widget_id: {}}}}
    params = nbformat.v4.new_code_cell("profile = 'cpu'", metadata={"tags": ["parameters"]})
    injected = nbformat.v4.new_code_cell("profile = 'smoke'", metadata={"tags": ["injected-parameters"]})
    injected["id"] = injected_id
    work = nbformat.v4.new_code_cell("train()", execution_count=3)
    work.metadata["papermill"] = {"duration": seconds}
    work.metadata["execution"] = {"iopub.execute_input": f"2026-12-01T12:00:{seconds:02.0f}"}
    work.outputs = [
        nbformat.v4.new_output("display_data", data={"application/vnd.jupyter.widget-view+json": {
            "model_id": widget_id, "version_major": 2, "version_minor": 0}, "text/plain": "  0%|"}),
        nbformat.v4.new_output("stream", name="stderr",
                               text=f"train:  50%|#####     | 1/2 [00:{seconds:02.0f}<00:01]\rtrain: 100%\n"
                                    "model.py:3: RuntimeWarning: a warning a reader should see\n"),
        nbformat.v4.new_output("stream", name="stdout", text="profile smoke on cpu: 2 pairs\n"),
        nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"}),
    ]
    nb.cells = [nbformat.v4.new_markdown_cell("# Title"), params, injected, work]
    for k, cell in enumerate(nb.cells):  # ids of the source notebook's cells are stable; Papermill's is random
        if cell is not injected:
            cell["id"] = f"cell-{k}"
    return nb


def test_clean_removes_what_changes_between_runs_and_keeps_the_results():
    a = executed.clean(_executed_notebook(11.0, "w1", "abc123"))
    b = executed.clean(_executed_notebook(42.0, "w2", "def456"))
    assert nbformat.writes(a) == nbformat.writes(b)  # same results, no diff
    assert not {"papermill", "widgets", "jupytext"} & set(a.metadata)
    work = a.cells[3]
    assert "papermill" not in work.metadata and "execution" not in work.metadata
    kinds = [(o.output_type, o.get("name"), tuple(o.get("data", {}))) for o in work.outputs]
    assert kinds == [("stream", "stderr", ()), ("stream", "stdout", ()), ("display_data", None, ("image/png", "text/plain"))]
    assert work.outputs[0].text == "model.py:3: RuntimeWarning: a warning a reader should see\n"
    assert a.cells[2].id == "injected-parameters" and a.cells[1].id != "injected-parameters"
    assert work.execution_count == 3
    nbformat.validate(a)


def test_publish_writes_the_cleaned_copy_under_notebooks(tmp_path):
    src = tmp_path / "build" / "00_rebasin_basics.ipynb"
    src.parent.mkdir()
    nbformat.write(_executed_notebook(5.0, "w", "x1"), src)
    out = executed.publish(src, tmp_path / "figures" / "cpu")
    assert out == tmp_path / "figures" / "cpu" / "notebooks" / "00_rebasin_basics.ipynb"
    assert "papermill" not in nbformat.read(out, as_version=4).metadata


def test_the_runner_publishes_each_executed_notebook(monkeypatch, tmp_path):
    monkeypatch.setattr(run, "build_dir", lambda: tmp_path / "build")

    def execute(source, profile, params, out):
        nbformat.write(_executed_notebook(1.0, "w", "x"), out / source.with_suffix(".ipynb").name)
        return 1.0

    monkeypatch.setattr(run, "execute", execute)
    assert run.main(["--profile", "smoke", "00"]) == 0
    published = figures_dir("smoke") / "notebooks" / "00_rebasin_basics.ipynb"
    assert published.exists() and "papermill" not in nbformat.read(published, as_version=4).metadata


def test_kernels_run_over_ipc_without_the_tcp_warning(tmp_path, capfd):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "from ipykernel.kernelapp import IPKernelApp\nprint(IPKernelApp.instance().transport)")]
    nbformat.write(nb, tmp_path / "t.ipynb")
    papermill.execute_notebook(str(tmp_path / "t.ipynb"), str(tmp_path / "o.ipynb"), kernel_name="python3",
                               kernel_manager_class=run.ipc_kernel_manager(), progress_bar=False, cwd=str(tmp_path))
    out = nbformat.read(tmp_path / "o.ipynb", as_version=4).cells[0].outputs[0].text
    assert out.strip() == "ipc"
    assert "without encryption" not in capfd.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.ipynb", "t.ipynb"]  # no socket files in the cwd


def test_kernel_sockets_live_in_the_temporary_folder_and_are_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    manager = run.ipc_kernel_manager()()
    assert manager.transport == "ipc" and Path(manager.ip).parent == tmp_path
    assert run.ipc_kernel_manager()().ip != manager.ip  # unique per kernel: concurrent runs never share a socket
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("1 + 1")]
    nbformat.write(nb, tmp_path / "t.ipynb")
    papermill.execute_notebook(str(tmp_path / "t.ipynb"), str(tmp_path / "o.ipynb"), kernel_name="python3",
                               kernel_manager_class=run.ipc_kernel_manager(), progress_bar=False,
                               cwd=str(tmp_path / "."))
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith("lmc-kernel-")]  # removed with the kernel


def test_warnings_name_files_relative_to_the_checkout_and_site_packages():
    from lmc_utils.paths import project_root

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [nbformat.v4.new_output("stream", name="stderr", text=(
        f"{project_root()}/lmc_utils/studies/x.py:3: PerformanceWarning: slow\n"
        "/home/u/.venv/lib/python3.11/site-packages/torch/jit/_script.py:1: FutureWarning: old\n"))]
    nb.cells = [cell]
    text = executed.clean(nb).cells[0].outputs[0].text
    assert text == "lmc_utils/studies/x.py:3: PerformanceWarning: slow\ntorch/jit/_script.py:1: FutureWarning: old\n"
