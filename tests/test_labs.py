"""Every lab in labs/ runs top to bottom as a notebook, through a real Jupyter kernel.

Each lab is a jupytext percent-format script: jupytext turns it into a notebook,
nbclient runs the notebook in an ipykernel kernel in quick mode (MINIDL_LAB_QUICK=1)
with matplotlib's Agg backend, the repository root as the working directory and on
PYTHONPATH (so the in-place build of minidl imports). A lab asserts its own key
results, so a lab that stops teaching what it says fails here. Needs the ``labs``
extra (jupytext, nbclient, nbformat, ipykernel).

A lab that loads real MNIST (its source calls ``load_mnist(``) carries the ``network``
marker and runs with MINIDL_DATA set to the verified data root of ``real_mnist_root``
(the rule in conftest's docstring: the user's cache read only, else a temporary copy,
else the lab is skipped with the reason).
"""
import os
import pathlib
import re

import pytest

jupytext = pytest.importorskip("jupytext")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = pathlib.Path(__file__).resolve().parent.parent
LABS = sorted((ROOT / "labs").glob("*.py"))


def needs_mnist(path):
    """Whether the lab at ``path`` loads real MNIST."""
    return "load_mnist(" in path.read_text()


#: the labs as parameters of the notebook test, the MNIST ones marked ``network``
LAB_RUNS = [pytest.param(path, id=path.stem, marks=[pytest.mark.network] if needs_mnist(path) else [])
            for path in LABS]


def test_there_are_labs_and_the_readme_lists_each():
    assert LABS, "no labs found in labs/"
    readme = (ROOT / "labs" / "README.md").read_text()
    for path in LABS:
        assert f"labs/{path.name}" in readme, f"labs/README.md does not describe {path.name}"


@pytest.mark.parametrize("path", LABS, ids=lambda p: p.stem)
def test_every_question_has_a_solution_before_the_next(path):
    """A markdown cell that asks (**Question**, **Questions**, **Task**, an exercise **(a) ...**)
    is followed by a cell tagged ``solution`` before the next question; a solution's markdown
    holds only the answer (no heading, no next exercise), so stripping the solutions leaves
    the rest of the lab whole."""
    cells = jupytext.read(path).cells
    pending = None
    for index, cell in enumerate(cells):
        tags = cell.get("metadata", {}).get("tags", [])
        asks = cell.cell_type == "markdown" and re.search(r"\*\*(Questions?[.*]|Tasks?[.*]|\([a-z]\) )", cell.source)
        if "solution" in tags:
            if cell.cell_type == "markdown":
                assert cell.source.startswith("*Solution.*"), f"{path.name}: cell {index} is tagged solution"
                assert not re.search(r"^#+ |\*\*\(", cell.source, re.MULTILINE), \
                    f"{path.name}: solution cell {index} runs on into the next section or exercise"
            pending = None
        elif asks:
            assert pending is None, f"{path.name}: cell {pending} asks a question without a solution cell"
            pending = index
    assert pending is None, f"{path.name}: cell {pending} asks a question without a solution cell"


@pytest.mark.lab
@pytest.mark.skipif(os.environ.get("MINIDL_BACKEND") == "numpy",
                    reason="the labs run once, on the compiled kernels; both backends are tested elsewhere")
@pytest.mark.parametrize("path", LAB_RUNS)
def test_lab_runs_as_a_notebook_in_quick_mode(path, monkeypatch, request):
    monkeypatch.setenv("MINIDL_LAB_QUICK", "1")
    if needs_mnist(path):
        monkeypatch.setenv("MINIDL_DATA", str(request.getfixturevalue("real_mnist_root")))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    python_path = [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(python_path))   # the kernel inherits the environment
    notebook = jupytext.read(path)
    client = nbclient.NotebookClient(notebook, timeout=1200, kernel_name="python3",
                                     resources={"metadata": {"path": str(ROOT)}})
    client.execute()          # a failing cell raises CellExecutionError with its traceback
    errors = [output for cell in notebook.cells if cell.cell_type == "code"
              for output in cell.get("outputs", []) if output.get("output_type") == "error"]
    assert not errors
