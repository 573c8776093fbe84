"""`python -m helpers doctor`: is this machine ready for the course? One [OK]/[FAIL] line per check."""

from __future__ import annotations

import importlib.metadata
import json
import platform
import subprocess
import sys
from dataclasses import dataclass

from . import download
from .fonts import use_chinese_font
from .loading import converted_gguf_dir, gguf_pieces, offline_forced, terms_path
from .registry import MODELS

KERNEL_NAME = "llm-course"
PACKAGES = ("torch", "transformers", "huggingface_hub", "jupyterlab", "ipywidgets", "matplotlib", "nbval")


@dataclass(frozen=True)
class Check:
    """One line of the report."""

    ok: bool
    label: str
    detail: str

    def __str__(self) -> str:
        return f"[{'OK' if self.ok else 'FAIL'}] {self.label}: {self.detail}"


def version_of(package: str) -> str | None:
    """Installed version of a distribution, or None."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def kernel_registered() -> bool:
    """True when the course's Jupyter kernel is registered."""
    try:
        result = subprocess.run(
            [sys.executable, "-m", "jupyter", "kernelspec", "list", "--json"],
            capture_output=True, text=True, timeout=60, check=False,
        )
        return KERNEL_NAME in json.loads(result.stdout or "{}").get("kernelspecs", {})
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return False


def model_checks() -> list[Check]:
    """For each model: is the offline copy present, is the real one cached?"""
    checks = []
    for spec in MODELS.values():
        real = "真实模型已缓存" if download.find_cached(spec) else "真实模型未缓存"
        if spec.offline == "gguf-wheel":
            try:
                pieces = gguf_pieces(spec)
                converted = "已转换" if (converted_gguf_dir(spec) / "SOURCE").is_file() else "首次加载时转换"
                chunks = f"{len(pieces)} 个分块，" if len(pieces) > 1 else ""
                found = f"{spec.gguf_dist} 包的 data/{spec.terms_file}" if terms_path(spec) else "缺失，请运行 make setup"
                terms = f"；使用条款：{found}" if spec.terms_file else ""  # no machine path: notebooks show it
                checks.append(Check(True, spec.name, f"GGUF 已安装（{chunks}{converted}），{real}{terms}"))
            except FileNotFoundError as error:
                checks.append(Check(False, spec.name, str(error)))
        else:
            present = spec.standin_path is not None and (spec.standin_path / "model.safetensors").is_file()
            detail = "替身模型就绪" if present else "替身模型缺失：请重新安装课程包"
            checks.append(Check(present, spec.name, f"{detail}，{real}"))
    return checks


def summary_line() -> str:
    """One line for the first cell of every notebook: versions, mode and device."""
    import torch

    mode = "离线模式" if offline_forced() else "联网优先"
    return (
        f"Python {platform.python_version()} · torch {version_of('torch')} · "
        f"transformers {version_of('transformers')} · {mode} · 线程数 {torch.get_num_threads()}"
    )


def run_checks() -> list[Check]:
    """All checks, in the order they are printed."""
    checks = [Check(sys.version_info >= (3, 10), "Python", platform.python_version())]
    for package in PACKAGES:
        version = version_of(package)
        checks.append(Check(version is not None, package, version or "未安装：请运行 make setup"))
    checks.append(Check(kernel_registered(), "Jupyter 内核", f"{KERNEL_NAME}（make setup 会注册它）"))
    family = use_chinese_font()
    checks.append(Check(family is not None, "中文字体", family or "未找到：pip install pylopdf-fonts-zh-cn"))
    checks.extend(model_checks())
    mode = "离线（LLM_COURSE_OFFLINE=1）" if offline_forced() else f"联网优先，模型仓库：{download.hub_endpoint()}"
    checks.append(Check(True, "模式", mode))
    return checks
