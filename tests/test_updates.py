"""Updates never clobber a learner's work: neither `tools/make_labs.py` on the learner's copy, nor an nbgitpuller
update (simulated with the git steps nbgitpuller runs: commit local work, fetch, merge with -Xours)."""

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
LAB = "04_softmax_and_decoding.ipynb"
LEARNER_LINE = "    return torch.softmax(torch.as_tensor(logits) / 1.0, dim=-1)  # learner's own answer"
NEW_PROSE = "（更新：这一段是讲师后来补充的说明。）"


def git(folder: Path, *args: str) -> str:
    command = ["git", "-c", "user.email=course@example.org", "-c", "user.name=course", *args]
    return subprocess.run(command, cwd=folder, check=True, capture_output=True, text=True).stdout


def make_labs(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / "make_labs.py"), "--solutions", str(folder / "solutions"),
         "--labs", str(folder / "labs")],
        capture_output=True, text=True,
    )


def learner_edits_first_exercise(lab_path: Path) -> None:
    """What a learner does in JupyterLab: replace the first stub's `raise` with code, and save."""
    notebook = nbformat.read(lab_path, as_version=4)
    cell = next(c for c in notebook.cells if c.cell_type == "code" and "raise NotImplementedError" in c.source)
    lines = cell.source.splitlines()
    index = next(i for i, line in enumerate(lines) if "raise NotImplementedError" in line)
    lines[index] = LEARNER_LINE
    cell.source = "\n".join(lines)
    nbformat.write(notebook, lab_path)


def instructor_changes_solution(folder: Path) -> None:
    """The instructor adds a sentence to the solution's first markdown cell."""
    path = folder / "solutions" / LAB
    notebook = nbformat.read(path, as_version=4)
    first = next(c for c in notebook.cells if c.cell_type == "markdown")
    first.source += "\n\n" + NEW_PROSE
    nbformat.write(notebook, path)


@pytest.fixture
def upstream(tmp_path) -> Path:
    """The instructor's repository: one solution and the lab generated from it."""
    folder = tmp_path / "upstream"
    (folder / "solutions").mkdir(parents=True)
    shutil.copy(ROOT / "solutions" / LAB, folder / "solutions" / LAB)
    assert make_labs(folder).returncode == 0
    git(folder, "init", "-q", "-b", "main")
    git(folder, "add", "-A")
    git(folder, "commit", "-qm", "course")
    return folder


def test_make_labs_never_overwrites_a_lab_the_learner_edited(upstream):
    lab = upstream / "labs" / LAB
    learner_edits_first_exercise(lab)
    edited = lab.read_bytes()
    instructor_changes_solution(upstream)
    result = make_labs(upstream)
    assert lab.read_bytes() == edited  # the learner's file is untouched
    fresh = upstream / "labs" / LAB.replace(".ipynb", ".new.ipynb")
    assert fresh.exists() and NEW_PROSE in fresh.read_text(encoding="utf-8")
    assert LEARNER_LINE not in fresh.read_text(encoding="utf-8")
    assert result.returncode == 1 and "--force" in result.stdout  # it says so, and how to overwrite on purpose


def test_an_nbgitpuller_update_keeps_the_learners_edit_and_brings_the_new_text(upstream, tmp_path):
    learner = tmp_path / "learner"
    subprocess.run(["git", "clone", "-q", str(upstream), str(learner)], check=True)
    learner_edits_first_exercise(learner / "labs" / LAB)

    instructor_changes_solution(upstream)
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "make_labs.py"), "--solutions", str(upstream / "solutions"),
         "--labs", str(upstream / "labs")], capture_output=True, text=True)
    assert result.returncode == 0
    git(upstream, "commit", "-qam", "clarify lab 04")

    # nbgitpuller's update: commit local work, fetch, merge preferring the learner's side on conflicts
    git(learner, "commit", "-qam", "WIP", "--allow-empty")
    git(learner, "fetch", "-q", "origin")
    git(learner, "merge", "-q", "-Xours", "origin/main")

    merged = nbformat.read(learner / "labs" / LAB, as_version=4)
    nbformat.validate(merged)
    text = (learner / "labs" / LAB).read_text(encoding="utf-8")
    assert LEARNER_LINE.strip() in text  # the learner's answer survived
    assert NEW_PROSE in text  # and the instructor's new sentence arrived
