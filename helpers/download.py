"""Fetching the course's real models from the Hugging Face hub or a mirror, never leaving a broken copy behind.

The network work is done by huggingface_hub (its HTTP client, progress bars and cache layout). This module adds
what the course needs on top of it:

* Settings are read at call time. huggingface_hub reads HF_ENDPOINT and HF_HOME once, when it is imported, so
  `os.environ["HF_ENDPOINT"] = "https://hf-mirror.com"` in a notebook would be ignored by it. We read them on
  every call and pass `endpoint=` and `cache_dir=` explicitly.
* Resume. huggingface_hub 2.x resumes a dropped connection only inside one call and deletes the partial file when
  the call fails. We keep the partial file as `<etag>.incomplete`, so after Ctrl-C, a long network outage or a
  reboot the next call continues where the last one stopped (an HTTP Range request).
* Verification. A file gets its final name only after its size and hash match what the hub announced (sha256 for
  large LFS files, git's sha1 for small ones). A corrupt or half-written file is deleted, never left where
  `from_pretrained` could load it.
* One error type, DownloadError, whose message (Chinese, then English) says what to do: use a mirror, download the
  files by hand (which files, which folder), or carry on with the offline copy. A token in HF_TOKEN is never shown.

Files go to the shared Hugging Face cache (HF_HOME, so other projects reuse them) or to a folder of your choice
(`local_dir`). `find_cached` also looks in the course's model folder `course_models_dir()/<name>`, the place for
files downloaded by hand.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

from .registry import ModelSpec

DEFAULT_ENDPOINT = "https://huggingface.co"
MIRROR_ENDPOINT = "https://hf-mirror.com"
TRUE_VALUES = {"1", "true", "yes", "on"}
SAFE_NAME = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,127}")  # what an ETag or commit may look like to become a path


class DownloadError(RuntimeError):
    """A model could not be downloaded; the message says what to do instead.

    `original` is the underlying error, for debugging (unlike the message, it is not scrubbed of tokens).
    """

    original: BaseException | None = None


class DownloadSettingsError(DownloadError):
    """The download cannot start until a setting is changed (offline mode, bad address, read-only folder)."""


class ContentMismatch(OSError):
    """A downloaded file is not the one the hub announced (wrong size or hash)."""


# ---------------------------------------------------------------- settings, read at every call


def env_flag(name: str) -> bool:
    """True when the environment variable `name` is set to 1/true/yes/on."""
    return os.environ.get(name, "").strip().lower() in TRUE_VALUES


def hub_endpoint(endpoint: str | None = None) -> str:
    """The hub address to use: the argument, else HF_ENDPOINT (read now), else huggingface.co."""
    return (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).strip().rstrip("/")


def hub_disabled() -> bool:
    """True when the user asked huggingface_hub never to go online (HF_HUB_OFFLINE=1 or TRANSFORMERS_OFFLINE=1)."""
    return env_flag("HF_HUB_OFFLINE") or env_flag("TRANSFORMERS_OFFLINE")


def hub_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """The Hugging Face cache folder, with huggingface_hub's precedence but read now, not at import time."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(name):
            return Path(os.environ[name]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg_cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg_cache).expanduser() / "huggingface" / "hub"


def course_cache_dir() -> Path:
    """Folder for the course's own files (converted SmolLM2, hand-downloaded models): LLM_COURSE_CACHE or
    ~/.cache/llm-course."""
    return Path(os.environ.get("LLM_COURSE_CACHE") or Path.home() / ".cache" / "llm-course").expanduser()


def course_models_dir() -> Path:
    """Where the course looks for hand-downloaded models: LLM_COURSE_MODELS, else course_cache_dir()/models."""
    if os.environ.get("LLM_COURSE_MODELS"):
        return Path(os.environ["LLM_COURSE_MODELS"]).expanduser()
    return course_cache_dir() / "models"


def repo_folder(spec: ModelSpec) -> str:
    """The repository's folder name inside the HF cache, e.g. models--uer--gpt2-chinese-cluecorpussmall."""
    return "models--" + spec.hub_id.replace("/", "--")


# ---------------------------------------------------------------- finding a complete copy (no network)


def find_cached(spec: ModelSpec, cache_dir: str | Path | None = None) -> Path | None:
    """Folder holding every file of `spec`, or None. Never touches the network.

    Looks in the HF cache (the snapshot of `spec.revision`), then in `course_models_dir()/<name>`.
    Unfinished downloads (`*.incomplete`) never count: files get their final name only once verified.
    """
    from huggingface_hub import try_to_load_from_cache

    folders = set()
    for filename in spec.files:
        path = try_to_load_from_cache(
            spec.hub_id, filename, cache_dir=str(hub_cache_dir(cache_dir)), revision=spec.revision
        )
        if not isinstance(path, str):
            break
        folders.add(Path(path).parent)
    else:
        if len(folders) == 1:
            return folders.pop()
    by_hand = course_models_dir() / spec.name
    if all((by_hand / name).is_file() and (by_hand / name).stat().st_size > 0 for name in spec.files):
        return by_hand
    return None


# ---------------------------------------------------------------- what the hub says about a file


@dataclass(frozen=True)
class RemoteFile:
    """One file as announced by the hub's HEAD /{repo}/resolve/{revision}/{filename} answer."""

    filename: str
    url: str  # where to GET it: the resolve URL, or the CDN address it redirects to
    etag: str  # sha256 of the content (LFS files) or git's sha1 of it (small files)
    size: int | None
    commit: str  # the commit that `revision` points to (X-Repo-Commit)
    send_token: bool  # False when `url` is on another host (a CDN): the token stays with the hub


def remote_file(spec: ModelSpec, filename: str, endpoint: str) -> RemoteFile:
    """Ask the hub (one HEAD request, no retries) where `filename` is, how big it is and what its hash is."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import FileMetadataError

    url = hf_hub_url(spec.hub_id, filename, revision=spec.revision, endpoint=endpoint)
    meta = get_hf_file_metadata(url, endpoint=endpoint)
    if not meta.commit_hash or not meta.etag:
        raise FileMetadataError(f"{url}: the answer has no X-Repo-Commit or ETag header")
    if not SAFE_NAME.fullmatch(meta.etag) or not SAFE_NAME.fullmatch(meta.commit_hash):
        # Both become file or folder names in the cache: "../x" would write outside it.
        raise FileMetadataError(f"{url}: the ETag or X-Repo-Commit header is not a plain name")
    same_host = urlsplit(meta.location)[:2] == urlsplit(url)[:2]
    return RemoteFile(filename, meta.location, meta.etag.lower(), meta.size, meta.commit_hash, same_host)


def content_problem(path: Path, remote: RemoteFile) -> str | None:
    """Why the file at `path` is not the one announced (size or hash), or None when it is."""
    size = path.stat().st_size
    if remote.size is not None and size != remote.size:
        return f"size {size} bytes, expected {remote.size}"
    if re.fullmatch(r"[0-9a-f]{64}", remote.etag):
        digest, kind = hashlib.sha256(), "sha256"
    elif re.fullmatch(r"[0-9a-f]{40}", remote.etag):  # git's blob id: sha1 of "blob <size>\0" + content
        digest, kind = hashlib.sha1(usedforsecurity=False), "git-sha1"
        digest.update(b"blob %d\0" % size)
    else:
        return None  # an ETag that is no hash (some mirrors): only the size can be checked
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != remote.etag:
        return f"{kind} {digest.hexdigest()[:12]}…, expected {remote.etag[:12]}…"
    return None


# ---------------------------------------------------------------- moving bytes


def open_partial(path: Path) -> BinaryIO:
    """Open an unfinished download for appending (one place, so tests can simulate a full disk)."""
    return open(path, "ab")


def network_errors() -> tuple[type[BaseException], ...]:
    """The HTTP client's "cannot connect / dropped / timed out" errors (httpx2 in huggingface_hub 2, httpx in 1)."""
    try:
        import httpx2 as client
    except ImportError:
        import httpx as client
    return (client.TransportError, ConnectionError, TimeoutError)


def keep_for_resume(error: BaseException) -> bool:
    """True when a partial file is still a good prefix after `error`: network trouble or Ctrl-C."""
    from huggingface_hub.errors import HfHubHTTPError

    if isinstance(error, HfHubHTTPError):
        status = error.response.status_code if error.response is not None else 0
        return status >= 500 or status in (408, 429)
    return isinstance(error, (KeyboardInterrupt, *network_errors()))


def fetch(remote: RemoteFile, partial: Path, final: Path) -> None:
    """Download `remote` into `partial` (resuming what is there), verify it, then rename it to `final`.

    On network trouble or Ctrl-C the partial file stays for the next call; on anything else (corrupt data,
    full disk) it is deleted. `final` is only ever written by an atomic rename of a verified file.
    """
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import build_hf_headers

    headers = build_hf_headers(token=None if remote.send_token else False)
    headers["Accept-Encoding"] = "identity"  # byte ranges of the file itself, so a resume is exact
    done = partial.stat().st_size if partial.exists() else 0
    if remote.size is not None and done > remote.size:
        partial.unlink()
        done = 0
    try:
        with open_partial(partial) as file:
            http_get(remote.url, file, resume_size=done, headers=headers, expected_size=remote.size,
                     displayed_filename=remote.filename)
        problem = content_problem(partial, remote)
        if problem:
            raise ContentMismatch(f"{remote.filename}: {problem}")
    except BaseException as error:
        if not keep_for_resume(error) or (partial.exists() and partial.stat().st_size == 0):
            partial.unlink(missing_ok=True)
        raise
    os.replace(partial, final)


def save_to_cache(spec: ModelSpec, remote: RemoteFile, cache: Path, endpoint: str) -> None:
    """Put one verified file into the HF cache: blobs/<etag>, then huggingface_hub links it into the snapshot."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.utils import WeakFileLock

    repo = cache / repo_folder(spec)
    blob = repo / "blobs" / remote.etag
    pointer = repo / "snapshots" / remote.commit / remote.filename
    if pointer.is_file() and content_problem(pointer, remote) is None:
        return
    if pointer.exists() or pointer.is_symlink():  # a corrupt copy left by some other tool
        pointer.unlink()
    if blob.is_file() and content_problem(blob, remote) is not None:
        blob.unlink()
    lock = cache / ".locks" / repo_folder(spec) / f"{remote.etag}.lock"  # the lock huggingface_hub uses too
    lock.parent.mkdir(parents=True, exist_ok=True)
    blob.parent.mkdir(parents=True, exist_ok=True)
    with WeakFileLock(lock):
        if not blob.is_file():
            fetch(remote, blob.with_name(f"{remote.etag}.incomplete"), blob)
    # The blob is there, so this only asks the hub again for the commit, writes refs/ and creates the link.
    path = Path(hf_hub_download(spec.hub_id, remote.filename, revision=spec.revision, cache_dir=str(cache),
                                endpoint=endpoint))
    if path.resolve() != blob.resolve() and (problem := content_problem(path, remote)):
        path.unlink()
        raise ContentMismatch(f"{remote.filename}: {problem}")


def save_to_folder(remote: RemoteFile, folder: Path) -> None:
    """Put one verified file into `folder` (partial files wait in folder/.cache/huggingface/download/)."""
    from huggingface_hub.utils import WeakFileLock

    final = folder / remote.filename
    if final.is_file() and content_problem(final, remote) is None:
        return
    final.unlink(missing_ok=True)  # an old or corrupt copy must not stay where it could be loaded
    staging = folder / ".cache" / "huggingface" / "download"
    with WeakFileLock(staging / f"{remote.etag}.lock"):
        fetch(remote, staging / f"{remote.etag}.incomplete", final)


def writable_folder(spec: ModelSpec, folder: Path) -> None:
    """Create `folder` and check that we can write there, before any byte is downloaded."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as error:
        raise DownloadSettingsError(settings_message(
            spec,
            f"无法写入文件夹 {folder}（{error.strerror or error}）。"
            f"请把 HF_HOME 设为一个可写的文件夹，或用 --local-dir 指定别的位置。",
            f"Cannot write to {folder} ({error.strerror or error}); set HF_HOME to a writable folder "
            f"or choose another place with --local-dir.",
        )) from None


# ---------------------------------------------------------------- the public entry point


def download(
    spec: ModelSpec,
    endpoint: str | None = None,
    cache_dir: str | Path | None = None,
    local_dir: str | Path | None = None,
) -> Path:
    """Fetch the files the course needs for `spec` at `spec.revision`; return the folder that holds them.

    endpoint: hub or mirror address (default: HF_ENDPOINT, read now, else huggingface.co).
    cache_dir: the HF cache (default: HF_HUB_CACHE or HF_HOME/hub, read now).
    local_dir: put plain files in this folder instead of the cache.
    A complete cached copy is returned without going online. Raises DownloadError (DownloadSettingsError when a
    setting must change first). Ctrl-C is not caught: the partial file stays and the next call resumes it.
    """
    if local_dir is None and (cached := find_cached(spec, cache_dir)) is not None:
        return cached
    url = hub_endpoint(endpoint)
    check_settings(spec, url)
    cache = hub_cache_dir(cache_dir)
    folder = Path(local_dir).expanduser() if local_dir is not None else None
    staging = folder / ".cache" / "huggingface" / "download" if folder else cache / repo_folder(spec) / "blobs"
    writable_folder(spec, staging)

    filename = spec.files[0]
    try:
        remotes = []
        for filename in spec.files:  # ask about every file first: fail before spending bandwidth
            remotes.append(remote_file(spec, filename, url))
        for remote in remotes:
            filename = remote.filename
            if folder is None:
                save_to_cache(spec, remote, cache, url)
            else:
                save_to_folder(remote, folder)
    except Exception as error:  # noqa: BLE001 - every failure becomes one clear message
        failure = DownloadError(unreachable_message(spec, url, error, filename))
        failure.original = error
        raise failure from None
    if folder is not None:
        return folder
    found = find_cached(spec, cache)
    if found is None:  # the revision moved to a new commit while we were downloading
        changed = RuntimeError("the repository changed during the download; run the download again")
        raise DownloadError(unreachable_message(spec, url, changed))
    return found


def check_settings(spec: ModelSpec, endpoint: str) -> None:
    """Refuse to go online when the course or the user said so, or when the address cannot be a hub."""
    from huggingface_hub import constants

    if env_flag("LLM_COURSE_OFFLINE"):
        raise DownloadSettingsError(settings_message(
            spec,
            "LLM_COURSE_OFFLINE=1：课程处于离线模式，不会下载。要下载真实模型，请先取消这个环境变量"
            "（终端里 unset LLM_COURSE_OFFLINE；notebook 里 os.environ.pop(\"LLM_COURSE_OFFLINE\")）。",
            "LLM_COURSE_OFFLINE=1 means offline mode: nothing is downloaded. Unset it first.",
        ))
    if hub_disabled():
        raise DownloadSettingsError(settings_message(
            spec,
            "HF_HUB_OFFLINE=1（或 TRANSFORMERS_OFFLINE=1）禁止联网。请在启动 Python/Jupyter 之前取消这个环境变量。",
            "HF_HUB_OFFLINE=1 (or TRANSFORMERS_OFFLINE=1) forbids network access; unset it before starting Python.",
        ))
    if constants.HF_HUB_OFFLINE:
        raise DownloadSettingsError(settings_message(
            spec,
            "huggingface_hub 在导入时读到了 HF_HUB_OFFLINE=1，之后再修改环境变量对它无效。"
            "请取消这个变量后重启内核 (restart the kernel) 或重新运行命令。",
            "huggingface_hub saw HF_HUB_OFFLINE=1 when it was imported; unset it and restart the kernel.",
        ))
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise DownloadSettingsError(settings_message(
            spec,
            f"模型仓库地址 {endpoint!r} 无效：需要以 https:// 开头，例如 {MIRROR_ENDPOINT}。",
            f"The hub address {endpoint!r} is not a URL; it must start with https://, e.g. {MIRROR_ENDPOINT}.",
        ))


# ---------------------------------------------------------------- messages


def redact(text: str) -> str:
    """`text` with any Hugging Face token (HF_TOKEN, the saved login, anything like hf_xxx) replaced by ***."""
    from huggingface_hub import constants

    secrets = [os.environ.get("HF_TOKEN"), os.environ.get("HUGGING_FACE_HUB_TOKEN")]
    try:
        secrets.append(Path(constants.HF_TOKEN_PATH).read_text().strip())
    except (OSError, TypeError):
        pass
    for secret in secrets:
        if secret and len(secret.strip()) >= 4:
            text = text.replace(secret.strip(), "***")
    return re.sub(r"hf_[A-Za-z0-9]{8,}", "hf_***", text)


def offline_copy(spec: ModelSpec) -> tuple[str, str]:
    """What load_model uses instead of the real model, in Chinese and English."""
    if spec.offline == "gguf-wheel":
        return f"{spec.gguf_dist} 包里的 GGUF 离线副本（量化的真实模型）", f"the GGUF copy in {spec.gguf_dist}"
    return "课程的替身模型 (stand-in)", "the stand-in"


def settings_message(spec: ModelSpec, zh: str, en: str) -> str:
    """A message for a setting that must change before downloading."""
    zh_copy, en_copy = offline_copy(spec)
    return redact(
        f"无法下载 {spec.name}（{spec.hub_id}）：{zh}\n"
        f"  在此之前，load_model 会使用{zh_copy}，课程照样能运行。\n"
        f"Cannot download {spec.hub_id}: {en} Until then load_model uses {en_copy}."
    )


def describe_failure(spec: ModelSpec, endpoint: str, error: BaseException, filename: str) -> tuple[str, str]:
    """What went wrong, in Chinese and English, for the errors huggingface_hub and the disk can raise."""
    from huggingface_hub import errors

    where = f"{spec.hub_id}@{spec.revision}"
    if isinstance(error, errors.RevisionNotFoundError):
        return f"{endpoint} 上没有 {where} 这个版本", f"revision {spec.revision} not found on {endpoint}"
    if isinstance(error, errors.RemoteEntryNotFoundError):
        return f"{endpoint} 上的 {where} 里没有文件 {filename}", f"{filename} not found in {where} on {endpoint}"
    if isinstance(error, (errors.RepositoryNotFoundError, errors.GatedRepoError)):
        return (f"{endpoint} 上找不到仓库 {spec.hub_id}（或它需要登录）",
                f"repository {spec.hub_id} not found on {endpoint} (or it needs a login)")
    if isinstance(error, errors.HfHubHTTPError):
        status = error.response.status_code if error.response is not None else "?"
        if isinstance(status, int) and status >= 500:
            return (f"服务器 {endpoint} 出错（HTTP {status}），可能是临时故障，稍后再试或换镜像",
                    f"server error HTTP {status} from {endpoint}; try again later or use a mirror")
        if status in (408, 429):
            return (f"{endpoint} 暂时不接受请求（HTTP {status}：超时或请求太多），已下载的部分会保留；"
                    f"等几分钟再运行一次，会从断点继续",
                    f"{endpoint} asked us to slow down (HTTP {status}); the partial file is kept, "
                    f"run again in a few minutes to resume")
        if status in (401, 403):
            return (f"{endpoint} 拒绝访问（HTTP {status}）：可能需要登录（HF_TOKEN）、访问令牌没有权限，"
                    f"或者网络代理拦截了请求",
                    f"{endpoint} denied access (HTTP {status}): a login (HF_TOKEN) or permission is needed, "
                    f"or a proxy blocked the request")
        return f"{endpoint} 拒绝了请求（HTTP {status}）", f"{endpoint} refused the request (HTTP {status})"
    if isinstance(error, errors.FileMetadataError):
        return (f"{endpoint} 的回答缺少模型仓库应有的信息，它可能不是 Hugging Face 镜像，或被代理改写了",
                f"{endpoint} does not answer like a Hugging Face hub (missing X-Repo-Commit/ETag)")
    if isinstance(error, errors.OfflineModeIsEnabled):
        return ("huggingface_hub 处于离线模式 (HF_HUB_OFFLINE)", "huggingface_hub is in offline mode (HF_HUB_OFFLINE)")
    if isinstance(error, (errors.LocalEntryNotFoundError, *network_errors())):
        return (f"连不上 {endpoint}（网络不通、被防火墙拦截或超时）",
                f"cannot reach {endpoint} (no network, blocked, or timed out)")
    if isinstance(error, ContentMismatch) or (isinstance(error, OSError) and "Consistency check" in str(error)):
        return (f"文件 {filename} 校验失败：大小或哈希与仓库公布的不一致，已删除；请重新运行，或换一个镜像",
                f"{filename} failed verification (size or hash differs from the hub's); it was deleted, run again")
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return (f"磁盘空间不足 (disk full)，未完成的 {filename} 已删除；请腾出空间，或用 HF_HOME / --local-dir 换到更大的磁盘",
                f"disk full while writing {filename} (partial file deleted); free space or use HF_HOME / --local-dir")
    if isinstance(error, OSError) and error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (f"没有权限写入 {error.filename or '缓存文件夹'}；请把 HF_HOME 设为可写的文件夹，或用 --local-dir",
                f"no permission to write {error.filename or 'the cache'}; set HF_HOME or use --local-dir")
    return f"下载 {filename} 时出错", f"error while downloading {filename}"


def unreachable_message(
    spec: ModelSpec, endpoint: str, error: BaseException, filename: str | None = None
) -> str:
    """What to tell a learner when the download failed: what happened, then the three ways forward."""
    filename = filename or spec.files[0]
    zh, en = describe_failure(spec, endpoint, error, filename)
    detail = getattr(error, "server_message", None) or str(error)  # the hub's own words, when it sent some
    detail = (detail.strip().splitlines() or [""])[0][:300]
    files = ", ".join(spec.files)
    by_hand = course_models_dir() / spec.name
    page = f"{MIRROR_ENDPOINT}/{spec.hub_id}/tree/{spec.revision}"
    zh_copy, en_copy = offline_copy(spec)
    if endpoint == MIRROR_ENDPOINT:
        mirror = f"镜像 {MIRROR_ENDPOINT} 也失败了：稍后重试，或用 --endpoint 换一个地址（例如 {DEFAULT_ENDPOINT}）。"
        en_mirror = f"The mirror failed too: try again later or another address (--endpoint {DEFAULT_ENDPOINT})"
    else:
        mirror = (f"运行 python -m helpers download {spec.name} --endpoint {MIRROR_ENDPOINT}，或设置环境变量 "
                  f"HF_ENDPOINT={MIRROR_ENDPOINT}（在 notebook 里设置 os.environ[\"HF_ENDPOINT\"] 也立即生效）。")
        en_mirror = f"Use a mirror (--endpoint {MIRROR_ENDPOINT} or HF_ENDPOINT)"
    return redact(
        f"无法下载 {spec.name}（{spec.hub_id}@{spec.revision}）：{zh}。\n"
        f"  细节 (details)：{type(error).__name__}: {detail}\n"
        f"怎么办：\n"
        f"  1. 换镜像 (mirror)：{mirror}\n"
        f"  2. 手动下载 (manual download)：从 {page} 下载 {files}，放进文件夹 {by_hand}，load_model 会自动找到它们。\n"
        f"  3. 先不管它：load_model 会改用{zh_copy}，课程照样能运行。下载中断的话，再运行一次会从断点继续。\n"
        f"Could not download {spec.hub_id}@{spec.revision} from {endpoint}: {en}. "
        f"{en_mirror}, or download {files} by hand into {by_hand}; "
        f"meanwhile load_model uses {en_copy}."
    )
