"""Wall time of each notebook in course/ and solutions/, run offline in a fresh kernel, and the total.

    .venv/bin/python -m benchmarks.notebooks                                   # every notebook
    .venv/bin/python -m benchmarks.notebooks course/08_kv_cache.ipynb --json    # some, as JSON

The notebooks themselves are not changed. Each run executes a copy with `tools/run_notebooks.py`'s
`execute`, in a scratch folder that mirrors the repository (links to everything else), so that relative
paths inside the notebook resolve as usual and nothing is written back.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools.run_notebooks import OFFLINE_ENV, execute  # noqa: E402


@dataclass(frozen=True)
class NotebookTime:
    """How long one notebook took, top to bottom."""

    notebook: str
    seconds: float


def scratch_copy(notebook: Path, scratch: Path, root: Path = ROOT) -> Path:
    """Copy `notebook` (root/<folder>/<name>.ipynb) into `scratch`, with links to every other file.

    scratch/<folder>/ gets the copy plus links to the folder's other entries; scratch/ gets links to
    root's other entries. Returns the path of the copy.
    """
    notebook = notebook.resolve()
    folder = notebook.parent
    if folder.parent != root.resolve():
        raise ValueError(f"{notebook} 不在 {root} 的一级子目录里。 (Expected root/<folder>/<notebook>.ipynb.)")
    for entry in root.iterdir():
        if entry.name != folder.name:
            (scratch / entry.name).symlink_to(entry)
    (scratch / folder.name).mkdir()
    for entry in folder.iterdir():
        if entry.name != notebook.name:
            (scratch / folder.name / entry.name).symlink_to(entry)
    copy = scratch / folder.name / notebook.name
    shutil.copyfile(notebook, copy)
    return copy


def time_notebook(notebook: Path, root: Path = ROOT, timeout: int = 600) -> NotebookTime:
    """Execute a scratch copy of `notebook` in a fresh kernel; return its wall time."""
    with tempfile.TemporaryDirectory(prefix="notebook-benchmark-") as scratch:
        seconds = execute(scratch_copy(notebook, Path(scratch), root), timeout=timeout)
    return NotebookTime(str(notebook.resolve().relative_to(root.resolve())), round(seconds, 1))


def all_notebooks(root: Path = ROOT) -> list[Path]:
    """The notebooks the course executes: course/ then solutions/ (labs/ are handed out clean)."""
    return sorted((root / "course").glob("*.ipynb")) + sorted((root / "solutions").glob("*.ipynb"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebook in course/ and solutions/")
    parser.add_argument("--json", action="store_true", help='print {"notebooks": [...], "total_s": ...}')
    args = parser.parse_args(argv)
    os.environ.update(OFFLINE_ENV)
    times = []
    for notebook in args.notebooks or all_notebooks():
        times.append(time_notebook(notebook))
        if not args.json:
            print(f"{times[-1].notebook:<45}{times[-1].seconds:>8.1f} s", flush=True)
    total = round(sum(t.seconds for t in times), 1)
    if args.json:
        print(json.dumps({"notebooks": [asdict(t) for t in times], "total_s": total, "cpu_count": os.cpu_count()},
                         ensure_ascii=False, indent=1))
    else:
        print(f"{'total':<45}{total:>8.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
