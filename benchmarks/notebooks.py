"""Wall time and peak memory of each notebook in course/ and solutions/, run offline in a fresh kernel.

    .venv/bin/python -m benchmarks.notebooks                                   # every notebook
    .venv/bin/python -m benchmarks.notebooks course/08_kv_cache.ipynb --json    # some, as JSON

The notebooks themselves are not changed. Each run executes a copy with `tools/run_notebooks.py`'s
`execute_measured`, in a scratch folder that mirrors the repository (links to everything else), so that relative
paths inside the notebook resolve as usual and nothing is written back. Peak memory is the kernel process's
peak resident set (VmHWM, Linux only): what one learner's notebook needs, for sizing a classroom machine.

BUDGETS holds each notebook's run-time budget, the one place for them; tests/test_notebook_budgets.py (marker
`slow`) runs every notebook and checks it.
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

from tools.run_notebooks import OFFLINE_ENV, execute_measured  # noqa: E402

# Run-time budget in seconds per notebook, matched by the longest start of its path (so "course/09_" covers
# whatever lesson 09 is called, and a prefix without a notebook is no error). Each is the notebook's wall time
# on 2026-12-01 on the 2-core development machine, otherwise idle (load average about 1.5), when the calibration
# notebook below took CALIBRATION_SECONDS, times 1.5 and at least 10 s more, rounded up to 5 s; the comments give
# the measurements. The test scales them by the calibration's time on the machine it runs on. 1.5, well below 2:
# a notebook that became twice as slow must fail even though timings swing by a quarter or more.
BUDGETS: dict[str, float] = {
    "course/00_": 40,  # 24.7 s
    "course/01_": 30,  # 16.0 s
    "course/02_": 25,  # 11.0 s
    "course/03_": 25,  # 10.5 s
    "course/04_": 35,  # 23.0 s
    "course/05_": 20,  # 5.9 s
    "course/06_": 25,  # 13.9 s
    "course/07_": 20,  # 8.3 s
    "course/08_": 50,  # 31.7 s
    "course/09_": 185,  # 122.7 s
    "course/10_": 35,  # 20.6 s
    "solutions/01_": 20,  # 5.6 s
    "solutions/02_": 20,  # 5.5 s
    "solutions/03_": 20,  # 7.5 s
    "solutions/04_": 25,  # 14.4 s
    "solutions/05_": 20,  # 7.0 s
    "solutions/06_": 20,  # 7.0 s
    "solutions/07_": 20,  # 5.5 s
    "solutions/08_": 25,  # 12.0 s
    "solutions/09_": 20,  # 8.0 s
    "solutions/10_": 20,  # 7.7 s
}


# Machine speed: the calibration notebook (load the base stand-in, sample 8 x 40 tokens) timed in a fresh kernel.
# BUDGETS were set when it took CALIBRATION_SECONDS; a test scales every budget by (its time now) / that, so a
# slower or busier machine gets proportionally more time and a faster one less: a notebook that doubled its
# run time fails anywhere, not only on a fast machine.
CALIBRATION_SECONDS = 7.1  # measured right before the notebooks (7.8 s a few minutes earlier)
CALIBRATION_CELLS = (
    "from helpers import generate, load_model",
    'model, tokenizer = load_model("gpt2-chinese", quiet=True)',
    'for seed in range(8):\n    generate(model, tokenizer, "[CLS]今天天气真", 40, temperature=1.0, seed=seed)',
)


def calibrate(timeout: int = 600) -> float:
    """Seconds the calibration notebook takes on this machine now (a fresh kernel, like every notebook run)."""
    import nbformat

    with tempfile.TemporaryDirectory(prefix="notebook-calibration-") as scratch:
        path = Path(scratch) / "calibration.ipynb"
        cells = [nbformat.v4.new_code_cell(source) for source in CALIBRATION_CELLS]
        nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
        return round(execute_measured(path, timeout=timeout).seconds, 1)


def budget_for(notebook: str) -> float | None:
    """The run-time budget of a notebook given by its path relative to the repository (None: no budget)."""
    matches = [prefix for prefix in BUDGETS if notebook.startswith(prefix)]
    return BUDGETS[max(matches, key=len)] if matches else None


@dataclass(frozen=True)
class NotebookTime:
    """How long one notebook took, top to bottom, how much memory its kernel used, and what it sent to stderr."""

    notebook: str
    seconds: float
    peak_rss_mb: float | None = None
    stderr: tuple[str, ...] = ()


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
    """Execute a scratch copy of `notebook` in a fresh kernel; return its wall time, peak memory and stderr."""
    with tempfile.TemporaryDirectory(prefix="notebook-benchmark-") as scratch:
        run = execute_measured(scratch_copy(notebook, Path(scratch), root), timeout=timeout)
    peak = round(run.peak_rss_mb) if run.peak_rss_mb is not None else None
    return NotebookTime(str(notebook.resolve().relative_to(root.resolve())), round(run.seconds, 1), peak,
                        tuple(run.stderr))


def all_notebooks(root: Path = ROOT) -> list[Path]:
    """The notebooks the course executes: course/ then solutions/ (labs/ are handed out clean)."""
    return sorted((root / "course").glob("*.ipynb")) + sorted((root / "solutions").glob("*.ipynb"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebook in course/ and solutions/")
    parser.add_argument("--json", action="store_true",
                        help='print {"notebooks": [...], "total_s": ..., "max_peak_rss_mb": ...}')
    args = parser.parse_args(argv)
    os.environ.update(OFFLINE_ENV)
    times = []
    calibration = calibrate()
    if not args.json:
        print(f"calibration notebook: {calibration:.1f} s (budgets assume {CALIBRATION_SECONDS:.0f} s)")
        print(f"{'notebook':<45}{'time':>10}{'budget':>10}{'peak RSS':>12}")
    for notebook in args.notebooks or all_notebooks():
        times.append(result := time_notebook(notebook))
        if not args.json:
            budget = budget_for(result.notebook)
            peak = f"{result.peak_rss_mb:.0f} MiB" if result.peak_rss_mb is not None else "?"
            print(f"{result.notebook:<45}{result.seconds:>8.1f} s{budget or 0:>8.0f} s{peak:>12}", flush=True)
            for line in result.stderr:
                print(f"    stderr in {line}", flush=True)
    total = round(sum(t.seconds for t in times), 1)
    peaks = [t.peak_rss_mb for t in times if t.peak_rss_mb is not None]
    if args.json:
        print(json.dumps({"notebooks": [asdict(t) for t in times], "total_s": total,
                          "max_peak_rss_mb": max(peaks, default=None), "calibration_s": calibration,
                          "cpu_count": os.cpu_count()},
                         ensure_ascii=False, indent=1))
    else:
        print(f"{'total':<45}{total:>8.1f} s{'':>10}{max(peaks, default=0):>8.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
