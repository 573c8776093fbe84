"""The gradebook: every kind of submission becomes a row, the grader never crashes and never lets one
submission touch another."""

import csv
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from helpers.grading import (
    ERROR, FAIL, NOT_IMPLEMENTED, NOT_RUN, PASS, cell_verdict, exercises, find_submissions, grade_folder,
)

ROOT = Path(__file__).resolve().parent.parent

RIGHT = '''
import torch
def my_softmax(logits, temperature=1.0):
    scaled = torch.as_tensor(logits, dtype=torch.float32) / temperature
    e = torch.exp(scaled - scaled.max(dim=-1, keepdim=True).values)
    return e / e.sum(dim=-1, keepdim=True)
'''
STUB = '''
def my_softmax(logits, temperature=1.0):
    raise NotImplementedError("还没有实现")
'''
WRONG = '''
import torch
def my_softmax(logits, temperature=1.0):
    return torch.exp(torch.as_tensor(logits, dtype=torch.float32))  # forgot to divide by the sum
'''
CHECKS = "from helpers.checks import check_softmax\ncheck_softmax(my_softmax)"


def lab(*sources: str) -> nbformat.NotebookNode:
    """A small lab notebook made of code cells (the course's real checker, no model needed)."""
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])


def save(folder: Path, name: str, notebook: nbformat.NotebookNode) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, folder / name)
    return folder / name


def rows(csv_path: Path) -> dict[str, dict[str, str]]:
    with open(csv_path, encoding="utf-8") as file:
        return {row["submission"]: row for row in csv.DictReader(file)}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_cell_verdict_reads_the_checkers_verdict_lines():
    def cell(text="", error=False):
        outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)] if text else []
        if error:
            outputs.append(nbformat.v4.new_output("error", ename="NameError", evalue="x", traceback=[]))
        return nbformat.v4.new_code_cell("check_x(f)", outputs=outputs)

    assert cell_verdict(cell("✅ 通过：softmax（5 个测试输入全部正确）\n")) == PASS
    assert cell_verdict(cell("❌ softmax：还没有实现：还没有实现。写好代码…\n")) == NOT_IMPLEMENTED
    assert cell_verdict(cell("some print\n❌ 没通过：softmax\n   输入：…\n")) == FAIL
    assert cell_verdict(cell(error=True)) == ERROR
    assert cell_verdict(cell()) == NOT_RUN


def test_exercises_are_the_checker_calls_in_order_without_repeats():
    notebook = lab("x = 1", "check_b(f)\ncheck_a(g)", "# check_c(h) is a comment\ncheck_b(f)")
    assert exercises(notebook) == ["check_b", "check_a"]


def test_submissions_are_found_recursively_without_checkpoints(tmp_path):
    for name in ("a/lab.ipynb", "b/c/lab.ipynb", "a/.ipynb_checkpoints/lab-checkpoint.ipynb"):
        save(tmp_path / Path(name).parent, Path(name).name, lab("1"))
    assert [p.relative_to(tmp_path).as_posix() for p in find_submissions(tmp_path)] == ["a/lab.ipynb", "b/c/lab.ipynb"]


def test_a_corrupt_file_gets_an_error_row_and_the_others_are_still_graded(tmp_path):
    subs = tmp_path / "subs"
    (subs / "carol").mkdir(parents=True)
    (subs / "carol" / "broken.ipynb").write_text("{ not json", encoding="utf-8")
    out = tmp_path / "grades.csv"
    grades = grade_folder(subs, out, timeout=60)
    assert len(grades) == 1 and "无法读取" in grades[0].error
    assert rows(out)["carol/broken.ipynb"]["total"] == "0"


def test_missing_or_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="找不到提交文件夹"):
        grade_folder(tmp_path / "nope", tmp_path / "g.csv")
    with pytest.raises(FileNotFoundError, match="没有 .ipynb"):
        grade_folder(tmp_path, tmp_path / "g.csv")


@pytest.mark.slow
def test_gradebook_rows_for_solved_untouched_half_done_and_corrupt_submissions(tmp_path):
    subs = tmp_path / "subs"
    solved = save(subs / "alice", "lab.ipynb", lab(RIGHT, CHECKS))
    untouched = save(subs / "bob", "lab.ipynb", lab(STUB, CHECKS))
    half = save(subs / "dave", "lab.ipynb", lab(RIGHT, CHECKS, WRONG, CHECKS.replace("check_softmax(", "check_softmax (")))
    (subs / "carol").mkdir()
    (subs / "carol" / "lab.ipynb").write_text("{ not json", encoding="utf-8")
    before = {p: digest(p) for p in (solved, untouched, half)}

    out = tmp_path / "grades.csv"
    grades = grade_folder(subs, out, timeout=600)
    table = rows(out)

    assert [g.submission for g in grades] == sorted(table)
    assert table["alice/lab.ipynb"]["check_softmax"] == PASS and table["alice/lab.ipynb"]["total"] == "1"
    assert table["bob/lab.ipynb"]["check_softmax"] == NOT_IMPLEMENTED and table["bob/lab.ipynb"]["total"] == "0"
    # dave's second attempt is wrong: the last call of a checker is the verdict that counts
    assert table["dave/lab.ipynb"]["check_softmax"] == FAIL
    assert "无法读取" in table["carol/lab.ipynb"]["errors"]
    assert {p: digest(p) for p in before} == before  # grading only reads submissions


@pytest.mark.slow
def test_an_endless_loop_becomes_a_timeout_row_and_is_killed(tmp_path):
    subs = tmp_path / "subs"
    save(subs / "erin", "lab.ipynb", lab("import time\nwhile True:\n    time.sleep(0.01)", "check_softmax(f)"))
    grades = grade_folder(subs, tmp_path / "grades.csv", timeout=10)
    assert "超时" in grades[0].error and grades[0].verdicts == {"check_softmax": NOT_RUN}
    leftover = subprocess.run(["pgrep", "-f", "llm-course-grade-"], capture_output=True, text=True).stdout
    assert leftover.strip() == ""  # no kernel or worker left running


@pytest.mark.slow
def test_a_submission_cannot_write_beside_itself_or_into_other_submissions(tmp_path):
    subs = tmp_path / "subs"
    victim = save(subs / "bob", "lab.ipynb", lab(RIGHT, CHECKS))
    attack = '''
from pathlib import Path
here = Path.cwd()
for folder in (here, here.parent):
    for path in list(folder.rglob("*.ipynb"))[:50]:
        try:
            path.write_text("overwritten")
        except OSError:
            pass
for name in ("../bob/lab.ipynb", "../../bob/lab.ipynb", "../grades.csv", "../../grades.csv"):
    try:
        Path(name).parent.mkdir(parents=True, exist_ok=True)
        Path(name).write_text("overwritten")
    except OSError:
        pass
'''
    attacker = save(subs / "mallory", "lab.ipynb", lab(attack, RIGHT, CHECKS))
    before = {victim: digest(victim), attacker: digest(attacker)}
    out = tmp_path / "grades.csv"
    grade_folder(subs, out, timeout=60)
    assert {p: digest(p) for p in before} == before
    assert sorted(p.relative_to(subs).as_posix() for p in subs.rglob("*")) == [
        "bob", "bob/lab.ipynb", "mallory", "mallory/lab.ipynb"]
    table = rows(out)
    assert table["bob/lab.ipynb"]["check_softmax"] == PASS and table["mallory/lab.ipynb"]["check_softmax"] == PASS


# Three labs whose checkers cover the kinds the course has (stand-in model, pure tensors, training); every lab
# runs as a solution in the notebook checks, and `python -m helpers grade solutions` grades them all.
SAMPLED_LABS = ("02_tokenization", "04_softmax_and_decoding", "09_training")


@pytest.mark.slow
@pytest.mark.parametrize("folder, verdict", [("solutions", PASS), ("labs", NOT_IMPLEMENTED)])
def test_the_courses_own_solutions_all_pass_and_labs_all_fail(tmp_path, folder, verdict):
    sample = tmp_path / folder
    sample.mkdir()
    for name in SAMPLED_LABS:
        shutil.copy(ROOT / folder / f"{name}.ipynb", sample / f"{name}.ipynb")
    grades = grade_folder(sample, tmp_path / f"{folder}.csv", timeout=600)
    assert [g.lab for g in grades] == list(SAMPLED_LABS)
    for grade in grades:
        assert grade.verdicts and set(grade.verdicts.values()) == {verdict}, (grade.submission, grade.verdicts)
        assert grade.error == ""


def test_cli_grade_writes_the_csv_and_a_summary(tmp_path):
    subs = tmp_path / "subs"
    (subs / "x").mkdir(parents=True)
    (subs / "x" / "bad.ipynb").write_text("nope", encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "helpers", "grade", str(subs), "--out", str(tmp_path / "g.csv")],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "x/bad.ipynb" in result.stdout and (tmp_path / "g.csv").exists()
    missing = subprocess.run([sys.executable, "-m", "helpers", "grade", str(tmp_path / "none")],
                             capture_output=True, text=True, cwd=ROOT)
    assert missing.returncode == 2 and "找不到提交文件夹" in missing.stderr
