"""Execute notebooks in place, offline, with the course kernel, so their stored outputs are fresh.

    .venv/bin/python tools/run_notebooks.py course/01_text_generation.ipynb [...]
    .venv/bin/python tools/run_notebooks.py --all        # course/ and solutions/

Lab notebooks are never executed here: they are handed out without outputs.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
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


def execute(path: Path, timeout: int = 600) -> float:
    """Run one notebook top to bottom in a fresh kernel (cwd = its folder) and save it; return seconds."""
    notebook = nbformat.read(path, as_version=4)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python (LLM 课程)", "language": "python"}
    start = time.perf_counter()
    NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    notebook.metadata["kernelspec"] = {"name": "llm-course", "display_name": "Python (LLM 课程)", "language": "python"}
    nbformat.write(notebook, path)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--all", action="store_true", help="every notebook in course/ and solutions/")
    args = parser.parse_args()
    os.environ.update(OFFLINE_ENV)
    paths = sorted((ROOT / "course").glob("*.ipynb")) + sorted((ROOT / "solutions").glob("*.ipynb")) if args.all else args.notebooks
    if any(path.resolve().parent.name == "labs" for path in paths):
        print("labs/ notebooks are not executed (they are handed out clean).", file=sys.stderr)
        return 2
    for path in paths:
        print(f"{path}: {execute(path):.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
