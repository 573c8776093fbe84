"""The explorer in a real JupyterLab, in headless Chromium: it appears, and a click changes the text.

Needs a system Chromium (`chromium` or `chromium-browser` on PATH: `apt-get install chromium`) and the `playwright`
Python package (`pip install playwright`; no `playwright install`: we drive the system browser). Without them the
test is skipped and says so, except under CI=true, where a missing tool is a failure with the same install hint:
CI must never go green with the browser test skipped. `.ci/run` looks for Chromium the same way.
A screenshot is kept in build/screenshots/next_token_explorer.png.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from helpers.fonts import bundled_font_file

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_NAMES = ("chromium", "chromium-browser")  # Debian's and Ubuntu's names; .ci/run uses the same two
SCREENSHOT = ROOT / "build" / "screenshots" / "next_token_explorer.png"
FAILURE_SCREENSHOT = SCREENSHOT.with_name("next_token_explorer_failure.png")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
EXPLORER_CELL = (
    "from helpers.widgets import NextTokenExplorer\n\n"
    'explorer = NextTokenExplorer("[CLS]今天天气真", model_name="gpt2-chinese")\n'
    "explorer"
)

# True once the notebook's kernel has started and is waiting for work.
KERNEL_IDLE = """() => {
    const widget = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    const kernel = widget && widget.sessionContext && widget.sessionContext.session
        && widget.sessionContext.session.kernel;
    return Boolean(kernel && kernel.status === 'idle' && kernel.connectionStatus === 'connected');
}"""

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None

INSTALL_HINT = ("浏览器测试需要系统的 Chromium 和 playwright 包：运行 `apt-get install chromium` 和 "
                "`.venv/bin/pip install playwright` 后即可启用。 (Needs chromium or chromium-browser on PATH and the "
                "playwright package.)")


def find_chromium() -> Path | None:
    """The system Chromium on PATH, under either of its usual names."""
    found = next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)
    return Path(found) if found else None


def on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def require_chromium() -> Path:
    """The browser to drive; without it (or without playwright) skip, or fail under CI=true."""
    path = find_chromium()
    if path is None or sync_playwright is None:
        missing = "Chromium" if path is None else "playwright"
        if on_ci():
            pytest.fail(f"CI=true but {missing} is missing: {INSTALL_HINT}", pytrace=False)
        pytest.skip(INSTALL_HINT)
    return path


@pytest.fixture
def chromium() -> Path:
    return require_chromium()


def test_chromium_is_found_on_path_under_either_name(tmp_path, monkeypatch):
    browser = tmp_path / "chromium-browser"
    browser.write_text("#!/bin/sh\n")
    browser.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_chromium() == browser
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert find_chromium() is None


def test_missing_browser_fails_under_ci_instead_of_skipping(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="apt-get install chromium"):
        require_chromium()
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="apt-get install chromium"):
        require_chromium()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_fontconfig(folder: Path) -> Path:
    """A fontconfig file that adds the course's Chinese font (Noto Sans SC) to the system fonts, for Chromium."""
    font = bundled_font_file()
    extra = f"<dir>{font.parent}</dir>" if font else ""
    path = folder / "fonts.conf"
    path.write_text(
        '<?xml version="1.0"?><!DOCTYPE fontconfig SYSTEM "fonts.dtd"><fontconfig>'
        f'<include ignore_missing="yes">/etc/fonts/fonts.conf</include>{extra}'
        f"<cachedir>{folder / 'fontcache'}</cachedir></fontconfig>",
        encoding="utf-8",
    )
    return path


def write_lab_settings(folder: Path) -> Path:
    """JupyterLab user settings for the test: do not ask about (or fetch) Jupyter news."""
    settings = folder / "lab-settings"
    target = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"fetchNews": "false"}), encoding="utf-8")
    return settings


def write_notebook(folder: Path) -> Path:
    """A one-cell notebook holding the explorer cell, as in course/04."""
    notebook = {
        "cells": [{"cell_type": "code", "execution_count": None, "id": "explorer", "metadata": {}, "outputs": [],
                   "source": EXPLORER_CELL}],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path = folder / "explorer.ipynb"
    path.write_text(json.dumps(notebook, ensure_ascii=False), encoding="utf-8")
    return path


def wait_for_server(url: str, process: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"JupyterLab exited early with code {process.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"JupyterLab did not answer {url} within {timeout} s")


def stop_server(process: subprocess.Popen, base: str, token: str) -> None:
    """Ask the server to shut down (it stops its kernels), then make sure its process group is gone."""
    try:
        request = urllib.request.Request(f"{base}/api/shutdown?token={token}", method="POST", data=b"")
        urllib.request.urlopen(request, timeout=10).close()
        process.wait(timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        pass
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if process.poll() is not None:
            break
        try:
            os.killpg(process.pid, sig)
            process.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass


@pytest.fixture
def jupyter_lab(tmp_path):
    """A JupyterLab on a free port, token-protected, serving tmp_path; killed afterwards in every case."""
    write_notebook(tmp_path)
    port, token = free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "LLM_COURSE_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "IPYTHONDIR": str(tmp_path / "ipython"),
    }
    command = [
        str(Path(sys.executable).parent / "jupyter"), "lab", "--no-browser", f"--port={port}",
        f"--IdentityProvider.token={token}", "--ServerApp.ip=127.0.0.1", "--ServerApp.port_retries=0",
        "--allow-root",  # CI runs as root
        f"--ServerApp.root_dir={tmp_path}", f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}",
        "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.expose_app_in_browser=True",  # window.jupyterapp: run cells and read the kernel's state
        f"--LabApp.user_settings_dir={write_lab_settings(tmp_path)}",
    ]
    log_path = tmp_path / "jupyter.log"
    log = open(log_path, "wb")
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_server(f"{base}/api/status?token={token}", process, log_path)
        yield base, token
    finally:
        stop_server(process, base, token)
        log.close()


def test_explorer_appears_and_reacts_to_a_click(chromium, jupyter_lab, tmp_path):
    base, token = jupyter_lab
    fonts = write_fontconfig(tmp_path)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 1100}, timeout=60_000,
            env={**os.environ, "FONTCONFIG_FILE": str(fonts)},
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(90_000)
            page.goto(f"{base}/lab/tree/explorer.ipynb?token={token}", timeout=90_000)
            page.wait_for_function(KERNEL_IDLE, polling=500)
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")

            greedy = page.locator(".widget-button", has_text="贪心")
            greedy.wait_for(state="visible")
            text_box = page.locator(".widget-textarea textarea")
            before = text_box.input_value()
            assert before == "[CLS]今天天气真"
            assert page.locator(".course-token-chips").first.inner_text().startswith("[CLS]")

            greedy.click()
            page.wait_for_function(
                "old => document.querySelector('.widget-textarea textarea').value !== old", arg=before,
                timeout=60_000,
            )
            after = text_box.input_value()
            assert after.startswith(before) and len(after) > len(before)
            page.wait_for_function(KERNEL_IDLE, polling=500)  # the kernel has redrawn bars and chips
            page.wait_for_function("() => document.querySelectorAll('.course-token-chips > span').length === 7")

            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
        except Exception:
            FAILURE_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(FAILURE_SCREENSHOT), full_page=True)
            print((tmp_path / "jupyter.log").read_text(errors="replace")[-3000:])
            raise
        finally:
            browser.close()
    assert SCREENSHOT.stat().st_size > 10_000
