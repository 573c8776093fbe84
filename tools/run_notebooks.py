"""Execute notebooks in place, offline, with the course kernel, so their stored outputs are fresh.

    .venv/bin/python tools/run_notebooks.py course/01_text_generation.ipynb [...]
    .venv/bin/python tools/run_notebooks.py --all        # course/ and solutions/

Lab notebooks are never executed here: they are handed out without outputs. A cell that writes to stderr
(a warning, a progress bar) is reported and the exit code is 1: stored notebooks must not show stderr.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
OFFLINE_ENV = {
    "LLM_COURSE_OFFLINE": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "PYTHONHASHSEED": "0",
    "MPLBACKEND": "Agg",
}


@dataclass(frozen=True)
class Execution:
    """What one run of a notebook took and showed."""

    seconds: float
    peak_rss_mb: float | None  # the kernel process's peak resident memory (Linux), None elsewhere
    stderr: list[str] = field(default_factory=list)  # "cell N: first line" for each stderr output


def process_peak_rss_mb(pid: int | None) -> float | None:
    """Peak resident memory (VmHWM) of process `pid` in MiB, read from /proc; None where that is unavailable."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (OSError, TypeError):
        return None
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    return int(match.group(1)) / 1024 if match else None


def stderr_outputs(notebook: nbformat.NotebookNode) -> list[str]:
    """"cell N: first line" for every stderr stream output of the notebook's code cells (N counts from 1)."""
    found = []
    for number, cell in enumerate(notebook.cells, start=1):
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                first = (output.get("text", "").strip().splitlines() or [""])[0]
                found.append(f"cell {number}: {first[:160]}")
    return found


def execute_measured(path: Path, timeout: int = 600) -> Execution:
    """Run one notebook top to bottom in a fresh kernel (cwd = its folder) and save it; time and measure it."""
    notebook = nbformat.read(path, as_version=4)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python (LLM 课程)", "language": "python"}
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    peaks: list[float] = []

    def measure(**_) -> None:  # after each cell, while the kernel still runs (VmHWM only grows)
        provisioner = getattr(client.km, "provisioner", None)
        peak = process_peak_rss_mb(getattr(provisioner, "pid", None))
        if peak is not None:
            peaks.append(peak)

    client.on_cell_executed = measure
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    notebook.metadata["kernelspec"] = {"name": "llm-course", "display_name": "Python (LLM 课程)", "language": "python"}
    nbformat.write(notebook, path)
    return Execution(seconds, max(peaks) if peaks else None, stderr_outputs(notebook))


def execute(path: Path, timeout: int = 600) -> float:
    """Run one notebook top to bottom in a fresh kernel (cwd = its folder) and save it; return seconds."""
    return execute_measured(path, timeout).seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--all", action="store_true", help="every notebook in course/ and solutions/")
    args = parser.parse_args(argv)
    os.environ.update(OFFLINE_ENV)
    paths = sorted((ROOT / "course").glob("*.ipynb")) + sorted((ROOT / "solutions").glob("*.ipynb")) if args.all else args.notebooks
    if any(path.resolve().parent.name == "labs" for path in paths):
        print("labs/ notebooks are not executed (they are handed out clean).", file=sys.stderr)
        return 2
    code = 0
    for path in paths:
        run = execute_measured(path)
        print(f"{path}: {run.seconds:.1f} s", flush=True)
        for line in run.stderr:
            print(f"{path}: {line}  <- stderr output (a warning or progress bar): fix it before committing",
                  file=sys.stderr)
            code = 1
    return code


if __name__ == "__main__":
    sys.exit(main())
