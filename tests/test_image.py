"""The repo2docker image (Binder, Zero to JupyterHub) sets the course up with nothing else: run the image's own
steps in a fresh venv, as far as this machine allows without a container engine, and check the result."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BINDER = ROOT / "binder"


def test_binder_files_point_at_the_lock_and_the_shared_setup_steps():
    requirements = (BINDER / "requirements.txt").read_text(encoding="utf-8")
    assert re.findall(r"^-r (\S+)$", requirements, re.MULTILINE) == ["../requirements.lock"]
    assert (BINDER / "runtime.txt").read_text(encoding="utf-8").strip() == f"python-{sys.version_info[0]}.{sys.version_info[1]}"
    for script in ("postBuild", "start"):
        assert os.access(BINDER / script, os.X_OK), f"binder/{script} must be executable"
    start = (BINDER / "start").read_text(encoding="utf-8")
    assert start.rstrip().endswith('exec "$@"')  # repo2docker's contract: start hands over to the server


@pytest.mark.slow
def test_image_setup_in_a_fresh_venv(tmp_path):
    prefix = tmp_path / "env"  # plays the image's $NB_PYTHON_PREFIX
    subprocess.run([sys.executable, "-m", "venv", str(prefix)], check=True)
    python = prefix / "bin" / "python"
    # binder/requirements.txt is the lock plus PyTorch's CPU index, which this machine cannot reach;
    # here the CPU torch comes from pip's local configuration instead.
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-r", str(ROOT / "requirements.lock")],
                   check=True, cwd=ROOT)
    env = {**os.environ, "NB_PYTHON_PREFIX": str(prefix), "PYTHON": str(python), "HOME": str(tmp_path / "home")}
    env.pop("LLM_COURSE_CACHE", None)
    subprocess.run([str(BINDER / "postBuild")], check=True, cwd=ROOT, env=env)

    kernel = json.loads((prefix / "share/jupyter/kernels/llm-course/kernel.json").read_text(encoding="utf-8"))
    assert kernel["display_name"] == "Python (LLM 课程)" and Path(kernel["argv"][0]).parent == prefix / "bin"
    cache = prefix / "share/llm-course-cache"
    for converted in ("smollm2-from-gguf", "gemma3-270m-from-gguf"):
        assert (cache / converted / "config.json").exists(), converted

    probe = (
        "from helpers import load_model\n"
        "from helpers.download import course_cache_dir\n"
        "m, t = load_model('gpt2-chinese', quiet=True)\n"
        "s, _ = load_model('smollm2', quiet=True)\n"
        "print(course_cache_dir(), type(m).__name__, t.convert_tokens_to_ids('今'), type(s).__name__)\n"
    )
    result = subprocess.run([str(BINDER / "start"), str(python), "-c", probe], capture_output=True, text=True,
                            cwd=tmp_path, env=env, check=True)
    assert result.stdout.split() == [str(cache), "GPT2LMHeadModel", "791", "LlamaForCausalLM"]

    out = tmp_path / "executed.ipynb"
    subprocess.run(
        [str(BINDER / "start"), str(prefix / "bin" / "jupyter"), "nbconvert", "--to", "notebook", "--execute",
         "--ExecutePreprocessor.kernel_name=llm-course", "--ExecutePreprocessor.timeout=600",
         str(ROOT / "solutions" / "02_tokenization.ipynb"), "--output", str(out)],
        check=True, cwd=tmp_path, env=env, capture_output=True,
    )
    executed = json.loads(out.read_text(encoding="utf-8"))
    text = "".join("".join(o.get("text", "")) for c in executed["cells"] for o in c.get("outputs", []))
    assert "✅" in text and "❌" not in text
