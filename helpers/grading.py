"""The gradebook: run every submitted lab notebook offline and collect each exercise's checker verdict.

    python -m helpers grade submissions/ --out grades.csv

Each submission runs in a subprocess of its own (never in the grader's process), with a fresh kernel, in a
private temporary folder that holds only a copy of the notebook, with a wall-clock timeout and a memory limit.
The submission itself is only read. A checker prints one verdict line (✅ passed, ❌ failed, ❌ …还没有实现 not
implemented); the gradebook reads the first verdict line that each `check_…(...)` cell printed.
This isolates submissions from each other's relative paths, not from a determined attacker: a real class grades
each submission in a container of its own (docs/classroom.md).
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .download import course_cache_dir

PASS, FAIL, NOT_IMPLEMENTED, ERROR, NOT_RUN = "pass", "fail", "not implemented", "error", "not run"
CHECK_CALL = re.compile(r"^\s*(check_\w+)\s*\(", re.MULTILINE)
LABS_DIR = Path(__file__).resolve().parent.parent / "labs"
OFFLINE_ENV = {"LLM_COURSE_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
               "PYTHONHASHSEED": "0", "MPLBACKEND": "Agg"}


@dataclass
class Grade:
    """One submission's row: a verdict per exercise, plus what went wrong with the notebook as a whole."""

    submission: str
    lab: str
    verdicts: dict[str, str] = field(default_factory=dict)
    error: str = ""

    @property
    def total(self) -> int:
        return sum(verdict == PASS for verdict in self.verdicts.values())


def find_submissions(folder: Path) -> list[Path]:
    """Every notebook below `folder`, in a stable order, without Jupyter's checkpoint copies."""
    return sorted(p for p in folder.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def exercises(notebook: nbformat.NotebookNode) -> list[str]:
    """The checkers a notebook calls, in order: one exercise each."""
    names: list[str] = []
    for cell in notebook.cells:
        if cell.cell_type == "code":
            names += [name for name in CHECK_CALL.findall(cell.source) if name not in names]
    return names


def expected_exercises(path: Path, submitted: nbformat.NotebookNode | None) -> list[str]:
    """The exercises of the course's own lab of the same name (so deleting a check cell does not hide it)."""
    own = LABS_DIR / path.name
    if own.exists():
        return exercises(nbformat.read(own, as_version=4))
    return exercises(submitted) if submitted is not None else []


def cell_verdict(cell: nbformat.NotebookNode) -> str:
    """pass / fail / not implemented from the first ✅/❌ line the cell printed; error if it raised instead."""
    for output in cell.get("outputs", []):
        text = output.get("text", "") if output.get("output_type") == "stream" else ""
        for line in text.splitlines():
            if line.startswith("✅"):
                return PASS
            if line.startswith("❌"):
                return NOT_IMPLEMENTED if "还没有实现" in line else FAIL
    if any(output.get("output_type") == "error" for output in cell.get("outputs", [])):
        return ERROR
    return NOT_RUN


def read_verdicts(executed: nbformat.NotebookNode, names: list[str]) -> dict[str, str]:
    """The verdict of each exercise in an executed notebook (the last cell that calls its checker counts)."""
    verdicts = {name: NOT_RUN for name in names}
    for cell in executed.cells:
        if cell.cell_type == "code":
            for name in CHECK_CALL.findall(cell.source):
                verdicts[name] = cell_verdict(cell)
    return verdicts


def limit_memory(max_bytes: int) -> None:
    """Runs in the child before exec: cap its address space (inherited by the kernel it starts)."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (max_bytes, max_bytes))


def kill_tree(pid: int) -> None:
    """Kill a process and everything it started (the kernel runs in a session of its own)."""
    import psutil

    try:
        parent = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    for process in [*parent.children(recursive=True), parent]:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass


def run_isolated(path: Path, timeout: float, memory_gb: float) -> tuple[nbformat.NotebookNode | None, str]:
    """Execute a copy of the notebook in a worker subprocess; return (executed notebook, error message)."""
    with tempfile.TemporaryDirectory(prefix="llm-course-grade-") as tmp:
        work = Path(tmp) / "work"
        work.mkdir()
        copy = work / path.name
        shutil.copyfile(path, copy)
        env = {**os.environ, **OFFLINE_ENV, "HOME": str(work), "JUPYTER_RUNTIME_DIR": str(Path(tmp) / "runtime"),
               "LLM_COURSE_CACHE": str(course_cache_dir())}  # the converted SmolLM2 and Gemma copies
        command = [sys.executable, "-m", "helpers.grading", "--worker", str(copy), "--timeout", str(timeout)]
        process = subprocess.Popen(
            command, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True, preexec_fn=lambda: limit_memory(int(memory_gb * 2**30)),
        )
        try:
            _, stderr = process.communicate(timeout=timeout + 60)
        except subprocess.TimeoutExpired:
            kill_tree(process.pid)
            process.communicate()
            return None, f"超时：运行超过 {timeout:.0f} 秒，已停止 (timeout)"
        executed = work / "executed.ipynb"
        if process.returncode != 0 or not executed.exists():
            last = (stderr.strip().splitlines() or ["(no message)"])[-1]
            return None, f"无法运行：{last[:300]}"
        notebook = nbformat.read(executed, as_version=4)
        return notebook, notebook.metadata.get("grading_error", "")


def grade_one(path: Path, root: Path, timeout: float, memory_gb: float) -> Grade:
    """Grade one submission; every failure becomes a row, never an exception."""
    grade = Grade(str(path.relative_to(root)), path.stem)
    try:
        submitted = nbformat.read(path, as_version=4)
    except Exception as error:  # not JSON, not a notebook, unreadable: the row says so
        grade.error = f"无法读取 notebook：{type(error).__name__}: {str(error)[:200]}"
        grade.verdicts = {name: NOT_RUN for name in expected_exercises(path, None)}
        return grade
    names = expected_exercises(path, submitted)
    executed, grade.error = run_isolated(path, timeout, memory_gb)
    grade.verdicts = read_verdicts(executed, names) if executed is not None else {name: NOT_RUN for name in names}
    return grade


def write_csv(grades: list[Grade], out: Path) -> list[str]:
    """One row per submission, one column per exercise, then total and errors; return the exercise columns."""
    columns: list[str] = []
    for grade in grades:
        columns += [name for name in grade.verdicts if name not in columns]
    with open(out, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["submission", "lab", *columns, "total", "exercises", "errors"])
        for g in grades:
            writer.writerow([g.submission, g.lab, *(g.verdicts.get(c, "") for c in columns),
                             g.total, len(g.verdicts), g.error])
    return columns


def summary(grades: list[Grade]) -> str:
    """A plain-text table: submission, passed/total, errors."""
    width = max([len(g.submission) for g in grades] + [10])
    lines = [f"{'submission':<{width}}  passed  errors"]
    lines += [f"{g.submission:<{width}}  {g.total:>2}/{len(g.verdicts):<3}  {g.error}" for g in grades]
    return "\n".join(lines)


def grade_folder(folder: Path, out: Path, timeout: float = 300, memory_gb: float = 6) -> list[Grade]:
    """Grade every notebook below `folder`, write the CSV and return the rows."""
    from tqdm.auto import tqdm

    if not folder.is_dir():
        raise FileNotFoundError(f"找不到提交文件夹 {folder}：请给出放学员 notebook 的文件夹。 (No such folder.)")
    paths = find_submissions(folder)
    if not paths:
        raise FileNotFoundError(f"{folder} 里没有 .ipynb 文件。 (No notebooks to grade in {folder}.)")
    grades = [grade_one(path, folder, timeout, memory_gb) for path in tqdm(paths, desc="评分", unit="份")]
    write_csv(grades, out)
    return grades


def worker(path: Path, timeout: float) -> int:
    """Inside the subprocess: execute the notebook in a fresh kernel, keep going after errors, save a copy."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute()
    except CellTimeoutError:
        notebook.metadata["grading_error"] = f"超时：某个单元格运行超过 {timeout:.0f} 秒 (timeout)"
    except DeadKernelError:
        notebook.metadata["grading_error"] = "内核崩溃（可能超出内存限制） (kernel died)"
    nbformat.write(notebook, path.parent / "executed.ipynb")
    return 0


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) == 4 and args[0] == "--worker" and args[2] == "--timeout":
        sys.exit(worker(Path(args[1]), float(args[3])))
    print(json.dumps({"usage": "python -m helpers grade DIR [--out FILE.csv]"}), file=sys.stderr)
    sys.exit(2)
