"""`helpers doctor` names every missing piece and its fix; the Chinese font falls back to a system CJK font."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
from types import SimpleNamespace

import matplotlib
import pytest
from matplotlib import font_manager

from helpers import doctor, fonts, registry


def test_each_failing_check_says_how_to_fix_it(monkeypatch, tmp_path):
    monkeypatch.setattr(registry, "STANDIN_DIR", tmp_path / "no-stand-ins")
    monkeypatch.setattr(doctor, "use_chinese_font", lambda: None)
    monkeypatch.setattr(doctor, "kernel_registered", lambda: False)
    monkeypatch.setattr(doctor, "version_of", lambda package: None if package == "torch" else "1.0")
    checks = {check.label: check for check in doctor.run_checks()}
    assert str(checks["torch"]) == "[FAIL] torch: 未安装：请运行 make setup"
    assert str(checks["中文字体"]) == "[FAIL] 中文字体: 未找到：pip install pylopdf-fonts-zh-cn"
    assert str(checks["Jupyter 内核"]) == "[FAIL] Jupyter 内核: llm-course（make setup 会注册它）"
    for name in ("gpt2-chinese", "gpt2-chinese-chat"):
        assert not checks[name].ok and "替身模型缺失：请重新安装课程包" in checks[name].detail
    assert checks["transformers"].ok and checks["模式"].ok
    failing = [label for label, check in checks.items() if not check.ok]
    assert failing[:5] == ["torch", "Jupyter 内核", "中文字体", "gpt2-chinese", "gpt2-chinese-chat"]  # in order


@pytest.mark.parametrize("outcome, registered", [
    (SimpleNamespace(stdout=json.dumps({"kernelspecs": {"llm-course": {}, "python3": {}}})), True),
    (SimpleNamespace(stdout=json.dumps({"kernelspecs": {"python3": {}}})), False),
    (SimpleNamespace(stdout="jupyter: command not found"), False),  # not JSON
    (OSError("no jupyter"), False),
    (subprocess.TimeoutExpired("jupyter", 60), False),
])
def test_kernel_check_reads_jupyter_kernelspec_list(monkeypatch, outcome, registered):
    def fake_run(*args, **kwargs):
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    monkeypatch.setattr(doctor.subprocess, "run", fake_run)
    assert doctor.kernel_registered() is registered


def installed_fonts(*names: str) -> list[SimpleNamespace]:
    return [SimpleNamespace(name=name) for name in names]


def test_without_the_bundled_font_a_system_cjk_font_is_used(monkeypatch):
    monkeypatch.setattr(fonts, "bundled_font_file", lambda: None)
    monkeypatch.setattr(font_manager.fontManager, "ttflist", installed_fonts("DejaVu Sans", "SimHei",
                                                                             "WenQuanYi Zen Hei"))
    with matplotlib.rc_context():
        assert fonts.use_chinese_font() == "WenQuanYi Zen Hei"  # the first of FALLBACK_FAMILIES that is installed
        assert matplotlib.rcParams["font.sans-serif"][0] == "WenQuanYi Zen Hei"
        assert matplotlib.rcParams["axes.unicode_minus"] is False


def test_without_any_cjk_font_nothing_changes(monkeypatch):
    monkeypatch.setattr(fonts, "bundled_font_file", lambda: None)
    monkeypatch.setattr(font_manager.fontManager, "ttflist", installed_fonts("DejaVu Sans"))
    with matplotlib.rc_context():
        before = list(matplotlib.rcParams["font.sans-serif"])
        assert fonts.use_chinese_font() is None
        assert matplotlib.rcParams["font.sans-serif"] == before


def test_bundled_font_is_found_without_importing_its_package_or_reported_missing(monkeypatch):
    path = fonts.bundled_font_file()
    assert path is not None and path.name == "NotoSansSC-Regular.otf" and path.is_file()
    with matplotlib.rc_context():
        assert fonts.use_chinese_font() == font_manager.FontProperties(fname=str(path)).get_name() == "Noto Sans SC"

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(fonts.importlib.metadata, "files", not_installed)
    assert fonts.bundled_font_file() is None
