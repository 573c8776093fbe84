"""The built wheel carries the stand-in models: a learner who installs the package (not the checkout) can run
the course offline. Builds a real wheel from a copy of the package sources (nothing is written to the checkout)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STANDINS = ROOT / "helpers" / "standins"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    """A wheel built by setuptools (no network, no build isolation) from a copy of pyproject.toml, README and helpers/."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "helpers", source / "helpers", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("dist")
    build = ("import sys; from setuptools import build_meta; "
             "print(build_meta.build_wheel(sys.argv[1]))")
    result = subprocess.run([sys.executable, "-c", build, str(out)], cwd=source, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    name = result.stdout.strip().splitlines()[-1]
    with zipfile.ZipFile(out / name) as archive:
        yield archive


def test_wheel_holds_every_stand_in_file_byte_for_byte(wheel):
    names = set(wheel.namelist())
    shipped = sorted(p for p in STANDINS.rglob("*") if p.is_file())
    assert {p.parent.name for p in shipped} >= {"gpt2-chinese-base", "gpt2-chinese-chat"}
    for path in shipped:
        inside = path.relative_to(ROOT).as_posix()
        assert inside in names, f"{inside} is not in the wheel (package-data in pyproject.toml)"
        assert wheel.getinfo(inside).file_size == path.stat().st_size, inside
    for model in ("gpt2-chinese-base", "gpt2-chinese-chat"):
        for needed in ("model.safetensors", "config.json", "vocab.txt"):
            assert f"helpers/standins/{model}/{needed}" in names


def test_wheel_has_the_package_and_the_command_but_no_course_material(wheel):
    names = wheel.namelist()
    assert "helpers/__init__.py" in names and "helpers/__main__.py" in names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "llm-course = helpers.__main__:main" in wheel.read(entry_points).decode()
    assert not [n for n in names if n.startswith(("tests/", "course/", "labs/", "solutions/", "training/"))]
