"""Generate the lab notebooks (labs/NN_*.ipynb) from the instructor solutions (solutions/NN_*.ipynb).

The solutions are the single source of truth. In a solution, the answer to an exercise sits between
two marker lines inside a code cell:

    def softmax(logits):
        \"\"\"The docstring stays, so learners see what to write.\"\"\"
        ### BEGIN SOLUTION
        ...
        ### END SOLUTION

In the lab, the lines from BEGIN to END become a stub that raises
NotImplementedError("练习 N：请在这里写你的代码"), where N counts the exercise cells of the notebook.
Outputs and execution counts are cleared; everything else (prose, hints, checker calls) is kept.

A hash of the generated cells is stored in the lab's metadata. If a lab on disk no longer matches its
own hash, someone (a learner) edited it: it is not overwritten unless --force is given; the fresh copy
is written beside it as NN_x.new.ipynb instead.

    python tools/make_labs.py            # write every lab whose solution changed
    python tools/make_labs.py --check    # exit 1 if any lab is stale (used by the tests)
    python tools/make_labs.py --force    # overwrite labs even if they were edited
    python tools/make_labs.py 03 04      # only the labs with these numbers
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
MARKER = re.compile(r"^(\s*)### (BEGIN|END) SOLUTION\s*$")
METADATA_KEY = "course_lab"


def stub(indent: str, number: int) -> list[str]:
    """The lines that replace one answer block."""
    return [
        f"{indent}# TODO：练习 {number}。删掉下面这一行，写上你的代码。",
        f'{indent}raise NotImplementedError("练习 {number}：请在这里写你的代码")',
    ]


def strip_solution(source: str, number: int, where: str) -> str:
    """Replace every BEGIN/END block of a cell's source by the exercise stub."""
    lines, inside = [], False
    for line in source.splitlines():
        match = MARKER.match(line)
        if match and match.group(2) == "BEGIN":
            if inside:
                raise ValueError(f"{where}: {BEGIN} inside another solution block")
            inside = True
            lines.extend(stub(match.group(1), number))
        elif match:
            if not inside:
                raise ValueError(f"{where}: {END} without {BEGIN}")
            inside = False
        elif not inside:
            lines.append(line)
    if inside:
        raise ValueError(f"{where}: {BEGIN} without {END}")
    return "\n".join(lines)


def content_hash(notebook: nbformat.NotebookNode) -> str:
    """sha256 of what a learner can edit: each cell's type and source (outputs and metadata ignored)."""
    cells = [[cell.cell_type, cell.source] for cell in notebook.cells]
    return hashlib.sha256(json.dumps(cells, ensure_ascii=False).encode()).hexdigest()


def make_lab(solution: nbformat.NotebookNode, name: str) -> nbformat.NotebookNode:
    """The lab notebook for one solution notebook (a new object; the solution is not changed)."""
    lab = copy.deepcopy(solution)
    number = 0
    for index, cell in enumerate(lab.cells):
        if cell.cell_type == "code":
            if BEGIN in cell.source:
                number += 1
                cell.source = strip_solution(cell.source, number, f"{name} cell {index}")
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)
    if number == 0:
        raise ValueError(f"{name}: no {BEGIN} block, so the lab would have no exercise")
    lab.metadata.pop(METADATA_KEY, None)
    lab.metadata[METADATA_KEY] = {"generated_from": f"solutions/{name}", "exercises": number,
                                  "sha256": content_hash(lab)}
    return lab


def as_json(notebook: nbformat.NotebookNode) -> dict:
    """A notebook as plain JSON data, for comparisons that ignore formatting."""
    return json.loads(nbformat.writes(notebook))


def is_edited(path: Path) -> bool:
    """True when the lab on disk was changed after it was generated (or carries no hash at all)."""
    notebook = nbformat.read(path, as_version=4)
    stored = notebook.metadata.get(METADATA_KEY, {}).get("sha256")
    return stored != content_hash(notebook)


def solutions_in(folder: Path) -> list[Path]:
    """The solution notebooks NN_*.ipynb of a folder."""
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb") if not p.name.endswith(".new.ipynb"))


def check(solutions: Path, labs: Path) -> int:
    """Exit status 1 when a lab is missing, stale or has no solution; print which and what to do."""
    stale = []
    expected = {path.name: make_lab(nbformat.read(path, as_version=4), path.name) for path in solutions_in(solutions)}
    for name, lab in expected.items():
        target = labs / name
        if not target.is_file() or as_json(nbformat.read(target, as_version=4)) != as_json(lab):
            stale.append(target)
    orphans = [p for p in solutions_in(labs) if p.name not in expected]
    for path in stale:
        print(f"过期或缺失 (stale or missing): {path}")
    for path in orphans:
        print(f"没有对应的参考答案 (no solution for this lab): {path}")
    if stale or orphans:
        print("请运行 python tools/make_labs.py 重新生成练习。 (Run python tools/make_labs.py to regenerate the labs.)")
        return 1
    print(f"全部 {len(expected)} 个练习都是最新的。 (All {len(expected)} labs are up to date.)")
    return 0


def write(solutions: Path, labs: Path, force: bool, only: tuple[str, ...] = ()) -> int:
    """Write every stale lab (or only those numbered in `only`); refuse (exit 1) to overwrite an edited lab unless `force`."""
    refused = 0
    labs.mkdir(parents=True, exist_ok=True)
    for path in solutions_in(solutions):
        if only and path.name[:2] not in only:
            continue
        lab = make_lab(nbformat.read(path, as_version=4), path.name)
        target = labs / path.name
        if target.is_file() and as_json(nbformat.read(target, as_version=4)) == as_json(lab):
            continue
        if target.is_file() and is_edited(target) and not force:
            fresh = target.with_name(target.stem + ".new.ipynb")
            nbformat.write(lab, fresh)
            print(f"⚠️  {target} 已被修改过（可能是你的作业），没有覆盖它。新生成的版本写在 {fresh}；"
                  f"确定要覆盖请加 --force。\n    ({target} was edited, so it was not overwritten; "
                  f"the fresh copy is {fresh}. Use --force to overwrite.)")
            refused += 1
            continue
        nbformat.write(lab, target)
        print(f"已生成 (written): {target}")
    return 1 if refused else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if a lab is stale")
    parser.add_argument("--force", action="store_true", help="overwrite labs even if they were edited")
    parser.add_argument("--solutions", type=Path, default=ROOT / "solutions", help="folder of solution notebooks")
    parser.add_argument("--labs", type=Path, default=ROOT / "labs", help="folder of lab notebooks")
    parser.add_argument("only", nargs="*", help="two-digit numbers of the labs to write (default: all)")
    args = parser.parse_args(argv)
    if args.check:
        return check(args.solutions, args.labs)
    return write(args.solutions, args.labs, args.force, tuple(args.only))


if __name__ == "__main__":
    sys.exit(main())
