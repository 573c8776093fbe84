"""tools/run_notebooks.py: executes in place with the course kernel's name kept, refuses labs, reports stderr."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools import run_notebooks  # noqa: E402


def test_labs_are_never_executed(tmp_path, capsys):
    lab = tmp_path / "labs" / "01_x.ipynb"
    lab.parent.mkdir()
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")]), lab)
    before = lab.read_text()
    assert run_notebooks.main([str(lab)]) == 2
    assert "labs/" in capsys.readouterr().err
    assert lab.read_text() == before


def test_executes_in_place_keeps_the_course_kernel_and_reports_stderr(tmp_path, capsys):
    folder = tmp_path / "course"
    folder.mkdir()
    (tmp_path / "data.txt").write_text("42")
    cells = [nbformat.v4.new_code_cell("import os\nprint(open('../data.txt').read(), os.environ['LLM_COURSE_OFFLINE'])"),
             nbformat.v4.new_code_cell("import sys\nprint('a progress bar', file=sys.stderr)")]
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "llm-course", "display_name": "Python (LLM 课程)", "language": "python"}
    path = folder / "01_x.ipynb"
    nbformat.write(notebook, path)

    assert run_notebooks.main([str(path)]) == 1  # ran, saved, but stderr must be fixed first
    out, err = capsys.readouterr()
    assert out.startswith(f"{path}: ") and out.rstrip().endswith(" s")
    assert "cell 2: a progress bar" in err

    stored = nbformat.read(path, as_version=4)
    assert stored.metadata["kernelspec"]["name"] == "llm-course"
    assert [cell.execution_count for cell in stored.cells] == [1, 2]
    assert stored.cells[0].outputs[0].text == "42 1\n"  # cwd = the notebook's folder, offline settings applied
    assert run_notebooks.stderr_outputs(stored) == ["cell 2: a progress bar"]
