"""pyproject.toml and environment.yml install the same set; the package carries its data."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def pyproject_dependencies() -> set[str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return {dep.replace(" ", "") for dep in data["project"]["dependencies"]}


def environment_pip_dependencies() -> set[str]:
    text = (ROOT / "environment.yml").read_text(encoding="utf-8")
    pip_block = text.split("- pip:", 1)[1]
    deps = re.findall(r"^\s+-\s+(\S.*)$", pip_block, flags=re.MULTILINE)
    return {dep.replace(" ", "") for dep in deps if not dep.startswith("-e")}


def test_environment_yml_matches_pyproject():
    assert environment_pip_dependencies() == pyproject_dependencies()


def test_torch_is_pinned_to_the_cpu_build_on_disk():
    assert "torch==2.13.0" in pyproject_dependencies()


def test_stand_ins_are_package_data():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "standins/*/*" in data["tool"]["setuptools"]["package-data"]["helpers"]


def test_makefile_offers_the_two_readme_commands():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for target in ("setup:", "lab:", "test:"):
        assert re.search(rf"^{target}", makefile, flags=re.MULTILINE)
    assert "make lab" in readme and "make test" in readme
    assert "LLM_COURSE_OFFLINE=1" in makefile
    assert (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().endswith("make test")
