"""Fetching the course's real models from the Hugging Face hub or a mirror (via huggingface_hub).

The mirror is read from the environment variable HF_ENDPOINT each time we download, so setting
`os.environ["HF_ENDPOINT"] = "https://hf-mirror.com"` in a notebook works even after `import helpers`.
"""

from __future__ import annotations

import os
from pathlib import Path

from .registry import ModelSpec

DEFAULT_ENDPOINT = "https://huggingface.co"


class DownloadError(RuntimeError):
    """A model could not be downloaded; the message says what to do instead."""


def hub_endpoint(endpoint: str | None = None) -> str:
    """The hub address to use: the argument, else HF_ENDPOINT, else huggingface.co."""
    return (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def hub_disabled() -> bool:
    """True when the user asked huggingface_hub never to go online (HF_HUB_OFFLINE=1)."""
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}


def find_cached(spec: ModelSpec, cache_dir: str | Path | None = None) -> Path | None:
    """Folder of a complete cached copy of the real model, or None. Never touches the network."""
    from huggingface_hub import try_to_load_from_cache

    folder = None
    for filename in spec.files:
        path = try_to_load_from_cache(spec.hub_id, filename, cache_dir=cache_dir, revision=spec.revision)
        if not isinstance(path, str):
            return None
        folder = Path(path).parent
    return folder


def download(
    spec: ModelSpec,
    endpoint: str | None = None,
    cache_dir: str | Path | None = None,
    local_dir: str | Path | None = None,
) -> Path:
    """Download the files the course needs for `spec` and return the folder that holds them."""
    from huggingface_hub import hf_hub_download

    url = hub_endpoint(endpoint)
    folder = None
    try:
        for filename in spec.files:
            path = hf_hub_download(
                spec.hub_id,
                filename,
                revision=spec.revision,
                cache_dir=cache_dir,
                local_dir=local_dir,
                endpoint=url,
            )
            folder = Path(path).parent
    except Exception as error:  # noqa: BLE001 - every failure becomes one clear message
        raise DownloadError(unreachable_message(spec, url, error)) from error
    assert folder is not None
    return folder


def unreachable_message(spec: ModelSpec, endpoint: str, error: BaseException) -> str:
    """What to tell a learner when the hub could not be used, in Chinese and English."""
    files = ", ".join(spec.files)
    return (
        f"无法从 {endpoint} 下载 {spec.hub_id}（{type(error).__name__}: {error}）。\n"
        f"  · 在中国大陆可以使用镜像：设置环境变量 HF_ENDPOINT=https://hf-mirror.com，"
        f"或运行 python -m helpers download {spec.name} --endpoint https://hf-mirror.com\n"
        f"  · 也可以手动下载这些文件：{files}，放进一个文件夹，再用 from_pretrained(该文件夹) 加载。\n"
        f"  · 课程会改用离线替身模型 (offline stand-in) 继续运行。\n"
        f"Could not download {spec.hub_id} from {endpoint}. Use a mirror (HF_ENDPOINT or --endpoint), "
        f"or download {files} by hand; the course falls back to its offline stand-in."
    )
