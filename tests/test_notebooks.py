"""Every notebook runs end to end in quick mode, and every notebook is registered here.

Notebooks are stored as jupytext percent-format ``.py`` files (``docs/notebooks.md``). Each
registered one is converted with jupytext and executed with nbclient in a fresh kernel with
``CI=1`` and ``SSBNN_QUICK=1`` (the quick size), its studies' results in the test session's
shared folder (``tests/test_paper_figures.py`` uses the same one) and its figures in a
temporary folder. A notebook file that is not in :data:`NOTEBOOKS` fails
:func:`test_every_notebook_is_registered`.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import jupytext
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"

NOTEBOOKS = (
    "01_rate_bounds.py",
    "02_contraction.py",
    "03_node_recovery.py",
    "04_compression_latency.py",
)
"""The registered notebooks: every file in ``notebooks/`` must be one of them."""


def unregistered(folder: Path, registered: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """Notebook files in ``folder`` that are not registered, and registered ones missing.

    A notebook is a ``.py`` or ``.ipynb`` file; ``name.ipynb`` is the paired copy of
    ``name.py`` and counts as registered with it.
    """
    stems = {Path(name).stem for name in registered}
    files = sorted(p for p in folder.iterdir() if p.suffix in (".py", ".ipynb"))
    extra = [p.name for p in files if p.stem not in stems]
    missing = [name for name in registered if not (folder / name).is_file()]
    return extra, missing


def test_every_notebook_is_registered() -> None:
    extra, missing = unregistered(NOTEBOOK_DIR, NOTEBOOKS)
    assert not extra, f"register these notebooks in tests/test_notebooks.py NOTEBOOKS: {extra}"
    assert not missing, f"registered notebooks that do not exist: {missing}"


def test_the_registration_check_catches_a_new_notebook(tmp_path: Path) -> None:
    for name in NOTEBOOKS:
        shutil.copy(NOTEBOOK_DIR / name, tmp_path / name)
    (tmp_path / "01_rate_bounds.ipynb").write_text("{}")  # a paired copy is fine
    assert unregistered(tmp_path, NOTEBOOKS) == ([], [])
    (tmp_path / "05_new.ipynb").write_text("{}")
    (tmp_path / "06_other.py").write_text("# %%\n")
    (tmp_path / NOTEBOOKS[0]).unlink()
    assert unregistered(tmp_path, NOTEBOOKS) == (["05_new.ipynb", "06_other.py"], [NOTEBOOKS[0]])


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_a_paired_percent_script_without_outputs(name: str) -> None:
    text = (NOTEBOOK_DIR / name).read_text(encoding="utf-8")
    assert "formats: ipynb,py:percent" in text
    notebook = jupytext.reads(text, fmt="py:percent")
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and notebook.cells[0].cell_type == "markdown"
    assert all(not cell.get("outputs") for cell in code)
    assert "SIZE = paper_figures.size_from_env()" in text, "every notebook has the size knob"


def test_paired_ipynb_files_are_not_tracked() -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    probe = "notebooks/01_rate_bounds.ipynb"
    result = subprocess.run(
        ["git", "check-ignore", "-q", probe], cwd=ROOT, capture_output=True, check=False
    )
    assert result.returncode == 0, f"{probe} must be git-ignored (outputs stay out of git)"


@pytest.fixture(scope="module")
def quick_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment of the notebook kernels: quick size, shared results, private figures."""
    results = tmp_path_factory.getbasetemp() / "ssbnn-quick-results"
    results.mkdir(exist_ok=True)
    figures = tmp_path_factory.mktemp("notebook-figures")
    return {
        "CI": "1",
        "SSBNN_QUICK": "1",
        "SSBNN_RESULTS": str(results),
        "SSBNN_FIGURES": str(figures),
        "MPLBACKEND": "Agg",
        "JUPYTER_PLATFORM_DIRS": "1",
    }


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_in_quick_mode(
    name: str, quick_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in quick_env.items():
        monkeypatch.setenv(key, value)
    notebook = jupytext.read(NOTEBOOK_DIR / name)
    client = NotebookClient(
        notebook,
        timeout=900,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )
    client.execute()  # raises CellExecutionError, naming the cell, when a cell fails
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.execution_count is not None for cell in code)
    outputs = [out for cell in code for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    stderr = "".join(out.text for out in outputs if out.get("name") == "stderr")
    assert "Traceback" not in stderr and "Warning" not in stderr, stderr
    images = [out for out in outputs if "image/png" in out.get("data", {})]
    assert images, f"{name} shows no figure"
    written = sorted(Path(quick_env["SSBNN_FIGURES"]).glob("*.png"))
    assert written, "the notebook's figures are written to SSBNN_FIGURES"
