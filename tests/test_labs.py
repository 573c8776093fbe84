"""The lab notebooks: generated from the solutions, handed out clean, runnable up to each exercise.

- every committed lab equals what tools/make_labs.py generates from its solution (`--check`);
- labs carry no outputs and no answers; each exercise keeps its signature and docstring;
- run in a fresh kernel (cwd = labs/), the only errors a lab raises are its stubs' NotImplementedError;
- every checker call in a solution printed ✅ when the solution was executed;
- the generator never overwrites a lab a learner has edited, unless --force.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
LABS = ROOT / "labs"
COURSE_TOPICS = {
    "01": "text_generation", "02": "tokenization", "03": "transformer_and_llama", "04": "softmax_and_decoding",
    "05": "gpt2_experiment_base", "06": "gpt2_experiment_chat", "07": "transformer_families", "08": "kv_cache",
}
STUB_ERROR = re.compile(r"^练习 (\d+)：请在这里写你的代码$")

spec = importlib.util.spec_from_file_location("make_labs", ROOT / "tools" / "make_labs.py")
make_labs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_labs)


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def code_cells(notebook: nbformat.NotebookNode) -> list:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def solution_blocks(notebook: nbformat.NotebookNode) -> int:
    return sum(make_labs.BEGIN in cell.source for cell in code_cells(notebook))


def is_checker_call(cell) -> bool:
    return cell.cell_type == "code" and re.search(r"^check_\w+\(", cell.source, re.M) is not None


@pytest.fixture(params=SOLUTIONS, ids=lambda p: p.name[:2])
def solution(request) -> Path:
    return request.param


# ------------------------------------------------------------------------------ what is committed


def test_one_lab_per_course_lesson_with_matching_names():
    """Exactly one solution and one lab per lesson of course/ (00_setup has none), named like the lesson."""
    names = [path.name for path in SOLUTIONS]
    lessons = sorted(p.name for p in (ROOT / "course").glob("[0-9][0-9]_*.ipynb") if not p.name.startswith("00_"))
    assert names == lessons
    assert {name[:2]: name[3:-6] for name in names if name[:2] in COURSE_TOPICS} == COURSE_TOPICS
    assert sorted(path.name for path in make_labs.solutions_in(LABS)) == names


def test_make_labs_check_passes_on_the_committed_labs():
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "make_labs.py"), "--check"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"全部 {len(SOLUTIONS)} 个练习都是最新的" in result.stdout


def test_lab_has_no_outputs_no_answers_and_numbered_stubs(solution):
    lab, sol = read(LABS / solution.name), read(solution)
    assert lab.metadata["kernelspec"]["name"] == "llm-course"
    assert lab.metadata["course_lab"]["sha256"] == make_labs.content_hash(lab)
    for cell in code_cells(lab):
        assert cell.outputs == [] and cell.execution_count is None
        assert "SOLUTION" not in cell.source
    stubs = [cell for cell in code_cells(lab) if "NotImplementedError(" in cell.source]
    assert 2 <= len(stubs) == solution_blocks(sol) == lab.metadata["course_lab"]["exercises"] <= 5
    for number, cell in enumerate(stubs, start=1):
        assert f'raise NotImplementedError("练习 {number}：请在这里写你的代码")' in cell.source


def test_each_exercise_keeps_its_signature_and_docstring(solution):
    lab, sol = read(LABS / solution.name), read(solution)
    for sol_cell, lab_cell in zip(sol.cells, lab.cells):
        if make_labs.BEGIN not in sol_cell.source:
            continue
        before_answer = sol_cell.source.split(make_labs.BEGIN)[0].rstrip(" ")
        assert re.search(r"^def \w+\(", before_answer, re.M), "an exercise is a function to write"
        assert '"""' in before_answer, "the docstring says what to implement"
        assert lab_cell.source.startswith(before_answer)


def test_every_exercise_has_a_hint_and_a_checker(solution):
    sol = read(solution)
    cells = sol.cells
    for index, cell in enumerate(cells):
        if make_labs.BEGIN in cell.source:
            assert "<details>" in cells[index - 1].source, f"{solution.name}: no hint before cell {index}"
            assert is_checker_call(cells[index + 1]) or "check_" in cells[index + 2].source


def test_every_checker_call_in_the_executed_solution_passed(solution):
    calls = [cell for cell in read(solution).cells if is_checker_call(cell)]
    assert len(calls) == solution_blocks(read(solution))
    for cell in calls:
        printed = "".join(out.get("text", "") for out in cell.outputs if out.output_type == "stream")
        checker_calls = len(re.findall(r"^check_\w+\(", cell.source, re.M))
        verdicts = re.findall(r"^(✅|❌)", printed, re.M)
        assert verdicts == ["✅"] * checker_calls, f"{solution.name}: {cell.source!r} printed {printed!r}"
        assert "retired" not in printed, "a solution uses a retired checker"


def test_solutions_keep_nbval_markers_in_tags_not_comments(solution):
    for cell in code_cells(read(solution)):
        assert "NBVAL" not in cell.source, cell.source


def test_the_opening_cell_says_how_to_ask_for_more_hints(solution):
    lab = read(LABS / solution.name)
    assert "hint()" in lab.cells[0].source and "hint(2)" in lab.cells[0].source
    imports = next(cell.source for cell in code_cells(lab) if "from helpers.checks import" in cell.source)
    assert re.search(r"from helpers\.checks import .*\bhint\b", imports)


def test_stub_docstrings_are_in_chinese(solution):
    for cell in code_cells(read(LABS / solution.name)):
        if "NotImplementedError(" not in cell.source:
            continue
        docstrings = re.findall(r'"""(.*?)"""', cell.source, re.S)
        assert docstrings and all(re.search(r"[\u4e00-\u9fff]", d) for d in docstrings), cell.source


# ------------------------------------------------------------------------------ running a lab


# Running a lab needs a fresh kernel (30-60 s each): two labs by default, all of them under -m slow.
SAMPLED_LABS = ("01", "07")


@pytest.mark.parametrize("solution", [
    pytest.param(path, marks=() if path.name[:2] in SAMPLED_LABS else pytest.mark.slow, id=path.name[:2])
    for path in SOLUTIONS])
def test_lab_runs_and_fails_only_at_its_stubs(solution):
    """Fresh kernel, cwd = labs/: cells before the first exercise run cleanly; every error is a stub's."""
    lab = read(LABS / solution.name)
    NotebookClient(lab, timeout=300, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(LABS)}}).execute()
    first_exercise = next(i for i, cell in enumerate(lab.cells)
                          if cell.cell_type == "code" and "NotImplementedError(" in cell.source)
    for index, cell in enumerate(lab.cells):
        for out in getattr(cell, "outputs", []):
            if out.output_type != "error":
                continue
            assert index > first_exercise, f"cell {index} fails before the first exercise: {out.ename}: {out.evalue}"
            assert out.ename == "NotImplementedError", f"cell {index}: {out.ename}: {out.evalue}"
            assert STUB_ERROR.match(out.evalue), out.evalue
    for cell in lab.cells:
        if is_checker_call(cell):
            printed = "".join(out.get("text", "") for out in cell.outputs if out.output_type == "stream")
            assert "❌" in printed and "还没有实现：练习" in printed and "✅" not in printed, printed


# ------------------------------------------------------------------------------ the generator


SOLUTION_CELL = '''import torch


def double(x: int) -> int:
    """Return twice x."""
    ### BEGIN SOLUTION
    return 2 * x
    ### END SOLUTION'''


def tiny_solution(folder: Path, title: str = "# 练习 99") -> Path:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "llm-course", "display_name": "Python (LLM 课程)", "language": "python"}
    notebook.cells = [nbformat.v4.new_markdown_cell(title), nbformat.v4.new_code_cell(SOLUTION_CELL),
                      nbformat.v4.new_code_cell("print(double(2))")]
    notebook.cells[2].outputs = [nbformat.v4.new_output("stream", text="4\n")]
    notebook.cells[2].execution_count = 3
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, folder / "99_tiny.ipynb")
    return folder / "99_tiny.ipynb"


def test_the_stub_replaces_the_answer_and_keeps_the_rest(tmp_path):
    lab = make_labs.make_lab(read(tiny_solution(tmp_path / "solutions")), "99_tiny.ipynb")
    assert lab.cells[1].source == (
        'import torch\n\n\ndef double(x: int) -> int:\n    """Return twice x."""\n'
        "    # TODO：练习 1。删掉下面这一行，写上你的代码。\n"
        '    raise NotImplementedError("练习 1：请在这里写你的代码")'
    )
    assert lab.cells[2].outputs == [] and lab.cells[2].execution_count is None
    namespace: dict = {}
    exec(lab.cells[1].source, namespace)
    with pytest.raises(NotImplementedError, match="练习 1：请在这里写你的代码"):
        namespace["double"](2)


def test_unbalanced_markers_are_an_error():
    with pytest.raises(ValueError, match="without"):
        make_labs.strip_solution("x = 1\n### BEGIN SOLUTION\nx = 2", 1, "test")
    with pytest.raises(ValueError, match="without"):
        make_labs.strip_solution("### END SOLUTION", 1, "test")


def run_generator(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "tools" / "make_labs.py"), *args],
                          capture_output=True, text=True, check=False)


def test_an_edited_lab_is_not_overwritten_without_force(tmp_path):
    solutions, labs = tmp_path / "solutions", tmp_path / "labs"
    tiny_solution(solutions)
    folders = ("--solutions", str(solutions), "--labs", str(labs))
    assert run_generator(*folders).returncode == 0
    lab_path = labs / "99_tiny.ipynb"
    fresh = read(lab_path)

    # A learner writes an answer and saves.
    edited = read(lab_path)
    edited.cells[1].source = edited.cells[1].source.replace('raise NotImplementedError("练习 1：请在这里写你的代码")',
                                                            "return x + x")
    nbformat.write(edited, lab_path)
    # Then the solution changes and the generator runs again.
    tiny_solution(solutions, title="# 练习 99（新版）")
    result = run_generator(*folders)
    assert result.returncode == 1
    assert "没有覆盖" in result.stdout and "not overwritten" in result.stdout and "--force" in result.stdout
    assert "return x + x" in read(lab_path).cells[1].source, "the learner's work is untouched"
    new_copy = read(labs / "99_tiny.new.ipynb")
    assert new_copy.cells[0].source == "# 练习 99（新版）"
    assert run_generator("--check", *folders).returncode == 1

    result = run_generator("--force", *folders)
    assert result.returncode == 0
    assert make_labs.as_json(read(lab_path)) == make_labs.as_json(new_copy)
    assert read(lab_path).cells[0].source != fresh.cells[0].source
    assert run_generator("--check", *folders).returncode == 0


def test_an_unedited_stale_lab_is_simply_refreshed(tmp_path):
    solutions, labs = tmp_path / "solutions", tmp_path / "labs"
    tiny_solution(solutions)
    folders = ("--solutions", str(solutions), "--labs", str(labs))
    run_generator(*folders)
    # The learner only ran the lab (outputs appear) and the solution's prose changed.
    ran = read(labs / "99_tiny.ipynb")
    ran.cells[2].outputs = [nbformat.v4.new_output("stream", text="4\n")]
    nbformat.write(ran, labs / "99_tiny.ipynb")
    tiny_solution(solutions, title="# 练习 99（改过）")
    check = run_generator("--check", *folders)
    assert check.returncode == 1 and "99_tiny.ipynb" in check.stdout
    assert run_generator(*folders).returncode == 0
    refreshed = read(labs / "99_tiny.ipynb")
    assert refreshed.cells[0].source == "# 练习 99（改过）" and refreshed.cells[2].outputs == []
    assert not (labs / "99_tiny.new.ipynb").exists()


def test_check_reports_a_lab_without_solution(tmp_path):
    solutions, labs = tmp_path / "solutions", tmp_path / "labs"
    tiny_solution(solutions)
    folders = ("--solutions", str(solutions), "--labs", str(labs))
    run_generator(*folders)
    shutil.copy(labs / "99_tiny.ipynb", labs / "98_orphan.ipynb")
    result = run_generator("--check", *folders)
    assert result.returncode == 1 and "98_orphan.ipynb" in result.stdout


def test_only_the_named_labs_are_written(tmp_path):
    solutions, labs = tmp_path / "solutions", tmp_path / "labs"
    tiny_solution(solutions)
    nbformat.write(read(solutions / "99_tiny.ipynb"), solutions / "98_other.ipynb")
    assert run_generator("--solutions", str(solutions), "--labs", str(labs), "98").returncode == 0
    assert sorted(p.name for p in labs.iterdir()) == ["98_other.ipynb"]
