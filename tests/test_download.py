"""helpers.download against a local imitation of the hub (tests/fake_hub.py): success, resume, and every way a
download can fail, each time checking that nothing half-written is left where a later load would pick it up."""

from __future__ import annotations

import dataclasses
import errno
import io
import os
import pickle
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from huggingface_hub import close_session, constants
from transformers import GPT2Config, GPT2LMHeadModel

from helpers import __main__ as cli
from helpers import download, loading
from helpers.registry import get_spec
from fake_hub import COMMIT, FakeHub, closed_port_url, git_sha1, sha256

SPEC = get_spec("gpt2-chinese")
BIN = "pytorch_model.bin"
SECRET = "hf_SECRETtoken0123456789abcdefXYZ"
CDN_HOST = "127.0.0.2"  # another loopback address: another host, as far as the client can tell


@pytest.fixture(scope="session")
def repo_files(bert_tokenizer, tmp_path_factory) -> dict[str, bytes]:
    """A micro GPT2 (about 0.7 MB) over the real uer vocab, as the three files the course downloads."""
    folder = tmp_path_factory.mktemp("fake-repo")
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(bert_tokenizer), n_positions=16, n_embd=8, n_layer=1, n_head=1,
                        bos_token_id=101, eos_token_id=102, pad_token_id=0)
    config.save_pretrained(folder)
    torch.save(GPT2LMHeadModel(config).state_dict(), folder / BIN)
    shutil.copy(Path(bert_tokenizer.name_or_path) / "vocab.txt", folder / "vocab.txt")
    return {name: (folder / name).read_bytes() for name in SPEC.files}


@pytest.fixture
def online(monkeypatch, tmp_path) -> Path:
    """Network allowed (tests only ever reach 127.0.0.1), an empty HF cache, no token; returns the cache folder."""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "LLM_COURSE_OFFLINE", "HF_ENDPOINT", "HF_TOKEN",
                 "HUGGING_FACE_HUB_TOKEN", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HTTP_PROXY", "HTTPS_PROXY",
                 "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,127.0.0.2,localhost")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("LLM_COURSE_MODELS", str(tmp_path / "course-models"))
    # huggingface_hub read HF_HUB_OFFLINE (set to 1 by conftest) and the token path when it was imported.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 16 * 1024)  # small chunks: partial files get bytes
    close_session()  # a fresh HTTP client that sees the proxy settings above
    yield tmp_path / "hf" / "hub"
    close_session()


@pytest.fixture
def hub(repo_files, online):
    """The fake hub serving the course's gpt2-chinese repository."""
    with FakeHub({SPEC.hub_id: dict(repo_files)}) as server:
        yield server


@pytest.fixture
def cdn(repo_files, online):
    """A second server with the same files on another host (127.0.0.2), playing the hub's CDN."""
    with FakeHub({SPEC.hub_id: dict(repo_files)}, host=CDN_HOST) as server:
        yield server


@pytest.fixture
def no_backoff(monkeypatch) -> list[float]:
    """huggingface_hub waits 1, 2, 4 ... s before retrying a 408/429: record the waits instead of sleeping."""
    from huggingface_hub.utils import _http

    waits: list[float] = []
    monkeypatch.setattr(_http, "time", SimpleNamespace(sleep=waits.append))
    return waits


def snapshot(cache: Path) -> Path:
    """The snapshot folder the download fills."""
    return cache / download.repo_folder(SPEC) / "snapshots" / COMMIT


def partial_files(cache: Path) -> list[Path]:
    """Unfinished downloads left in the cache."""
    return sorted((cache / download.repo_folder(SPEC) / "blobs").glob("*.incomplete"))


def assert_nothing_loadable(cache: Path, *names: str) -> None:
    """No complete copy is found, and none of `names` exists under its final name in the snapshot."""
    assert download.find_cached(SPEC) is None
    for name in names:
        assert not (snapshot(cache) / name).exists()
        assert not (snapshot(cache) / name).is_symlink()


def assert_advice(message: str) -> None:
    """The failure message names the mirror, the manual download (files and folder) and the stand-in."""
    assert "无法下载" in message and "Could not download" in message
    assert "--endpoint https://hf-mirror.com" in message and "HF_ENDPOINT" in message
    assert "config.json, pytorch_model.bin, vocab.txt" in message
    assert str(download.course_models_dir() / SPEC.name) in message
    assert "替身模型" in message and "stand-in" in message


class Interrupting:
    """A partial file that raises `error` once `limit` bytes have been written (Ctrl-C, full disk)."""

    def __init__(self, path: Path, limit: int, error: BaseException):
        self.file, self.limit, self.error = open(path, "ab"), limit, error

    def write(self, data: bytes) -> int:
        if self.file.tell() + len(data) > self.limit:
            raise self.error
        return self.file.write(data)

    def __getattr__(self, name: str):
        return getattr(self.file, name)

    def __enter__(self) -> Interrupting:
        return self

    def __exit__(self, *exc_info) -> None:
        self.file.close()


def make_read_only(folder: Path, monkeypatch) -> None:
    """Make `folder` unwritable; as root (who ignores permissions) simulate a read-only file system there."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o555)
    try:
        (folder / "probe").touch()
    except PermissionError:
        return
    (folder / "probe").unlink()

    def refuse(real):
        def wrapper(path, *args, **kwargs):
            if os.fsdecode(path).startswith(str(folder)):
                raise OSError(errno.EROFS, "Read-only file system", os.fsdecode(path))
            return real(path, *args, **kwargs)
        return wrapper

    monkeypatch.setattr(os, "mkdir", refuse(os.mkdir))
    monkeypatch.setattr(os, "open", refuse(os.open))


# ---------------------------------------------------------------- 1 success


def test_download_lands_verified_files_and_load_model_uses_the_cache(hub, online, repo_files, monkeypatch, capsys):
    folder = download.download(SPEC, endpoint=hub.url)

    assert folder == snapshot(online)
    assert {name: (folder / name).read_bytes() for name in SPEC.files} == repo_files
    assert download.find_cached(SPEC) == folder
    blobs = sorted(p.name for p in (online / download.repo_folder(SPEC) / "blobs").iterdir())
    assert blobs == sorted([sha256(repo_files[BIN]), git_sha1(repo_files["config.json"]),
                            git_sha1(repo_files["vocab.txt"])])
    assert all(r.path.startswith(f"/{SPEC.hub_id}/resolve/{SPEC.revision}/") for r in hub.requests)
    assert [r.filename for r in hub.requests if r.method == "GET"] == list(SPEC.files)
    assert all("range" not in r.headers for r in hub.requests)

    # A second call finds the complete copy and does not go online.
    count = len(hub.requests)
    assert download.download(SPEC, endpoint=hub.url) == folder
    assert len(hub.requests) == count

    # load_model prefers the cached real model, even with the hub gone.
    monkeypatch.setenv("HF_ENDPOINT", closed_port_url())
    model, tokenizer = loading.load_model("gpt2-chinese")
    assert model.course_source.source == "hub-cache"
    assert "本机缓存" in capsys.readouterr().out
    served = torch.load(io.BytesIO(repo_files[BIN]), weights_only=True)
    assert torch.equal(model.transformer.wte.weight, served["transformer.wte.weight"])
    assert tokenizer.convert_tokens_to_ids("天") == repo_files["vocab.txt"].decode().split("\n").index("天")


def test_local_dir_gets_plain_files_and_leaves_the_cache_alone(hub, online, repo_files, tmp_path):
    target = tmp_path / "my-models" / "gpt2"
    assert download.download(SPEC, endpoint=hub.url, local_dir=target) == target
    assert {name: (target / name).read_bytes() for name in SPEC.files} == repo_files
    assert not (online / download.repo_folder(SPEC)).exists()
    assert download.find_cached(SPEC) is None  # not a place load_model looks in

    # The course's own model folder is: load_model finds files downloaded (or copied by hand) there.
    course_folder = download.course_models_dir() / SPEC.name
    download.download(SPEC, endpoint=hub.url, local_dir=course_folder)
    assert download.find_cached(SPEC) == course_folder


def test_pinned_commit_revision(hub, online, repo_files):
    pinned = dataclasses.replace(SPEC, revision=COMMIT)
    folder = download.download(pinned, endpoint=hub.url)
    assert download.find_cached(pinned) == folder == snapshot(online)
    assert all(r.path.startswith(f"/{SPEC.hub_id}/resolve/{COMMIT}/") for r in hub.requests)

    unknown = dataclasses.replace(SPEC, revision="f" * 40)
    with pytest.raises(download.DownloadError, match=f"没有 {SPEC.hub_id}@f+ 这个版本"):
        download.download(unknown, endpoint=hub.url)
    assert download.find_cached(unknown) is None


# ---------------------------------------------------------------- 2 resume after a dropped connection


def test_dropped_connection_resumes_with_a_range_request(hub, online, repo_files):
    hub.drop_after[BIN] = 300_000

    folder = download.download(SPEC, endpoint=hub.url)

    first, second = hub.gets(BIN)
    assert "range" not in first.headers
    start = int(second.headers["range"].removeprefix("bytes=").rstrip("-"))
    assert 0 < start <= 300_000  # it asked only for what was missing
    assert (folder / BIN).read_bytes() == repo_files[BIN]
    assert partial_files(online) == []


def test_dropped_connection_then_server_down_resumes_on_the_next_call(hub, online, repo_files):
    hub.drop_after[BIN] = 300_000
    hub.down_after_drop = 503
    with pytest.raises(download.DownloadError, match="HTTP 503"):
        download.download(SPEC, endpoint=hub.url)
    assert_nothing_loadable(online, BIN)
    [partial] = partial_files(online)
    kept = partial.stat().st_size
    assert 0 < kept <= 300_000 and partial.read_bytes() == repo_files[BIN][:kept]

    hub.get_status.clear()  # the server is back
    folder = download.download(SPEC, endpoint=hub.url)
    assert hub.gets(BIN)[-1].headers["range"] == f"bytes={kept}-"
    assert (folder / BIN).read_bytes() == repo_files[BIN]
    assert partial_files(online) == []


# ---------------------------------------------------------------- 8 Ctrl-C, then resume on the next call


def test_interrupted_download_keeps_a_hidden_partial_file_and_resumes(hub, online, repo_files, monkeypatch):
    plain_open = download.open_partial
    monkeypatch.setattr(download, "open_partial", lambda path: Interrupting(path, 200_000, KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        download.download(SPEC, endpoint=hub.url)

    assert_nothing_loadable(online, BIN)
    [partial] = partial_files(online)
    assert partial.name == f"{sha256(repo_files[BIN])}.incomplete"
    kept = partial.stat().st_size
    assert 0 < kept <= 200_000
    assert partial.read_bytes() == repo_files[BIN][:kept]

    monkeypatch.setattr(download, "open_partial", plain_open)  # the learner runs the download again
    folder = download.download(SPEC, endpoint=hub.url)

    assert hub.gets(BIN)[-1].headers["range"] == f"bytes={kept}-"
    assert (folder / BIN).read_bytes() == repo_files[BIN]
    assert partial_files(online) == []


# ---------------------------------------------------------------- 3 not found, 4 server error, 5 unreachable


def test_missing_repository_is_a_clear_error(hub, online):
    missing = dataclasses.replace(SPEC, hub_id="nobody/no-such-model")
    with pytest.raises(download.DownloadError) as info:
        download.download(missing, endpoint=hub.url)
    assert "找不到仓库 nobody/no-such-model" in str(info.value)
    assert "not found" in str(info.value)
    assert hub.gets(BIN) == []


def test_missing_file_stops_before_anything_is_downloaded(hub, online):
    del hub.repos[SPEC.hub_id]["vocab.txt"]
    with pytest.raises(download.DownloadError) as info:
        download.download(SPEC, endpoint=hub.url)
    assert "没有文件 vocab.txt" in str(info.value)
    assert_advice(str(info.value))
    assert [r for r in hub.requests if r.method == "GET"] == []  # every file is checked before any byte moves
    assert_nothing_loadable(online, *SPEC.files)


def test_server_error_on_metadata(hub, online):
    hub.status["*"] = 503
    with pytest.raises(download.DownloadError) as info:
        download.download(SPEC, endpoint=hub.url)
    assert "HTTP 503" in str(info.value)
    assert_advice(str(info.value))
    assert_nothing_loadable(online, *SPEC.files)


def test_server_error_in_the_middle_leaves_no_model_file(hub, online):
    hub.get_status[BIN] = 500
    with pytest.raises(download.DownloadError) as info:
        download.download(SPEC, endpoint=hub.url)
    assert "HTTP 500" in str(info.value)
    assert (snapshot(online) / "config.json").is_file()  # verified files already done may stay
    assert_nothing_loadable(online, BIN, "vocab.txt")
    assert partial_files(online) == []  # nothing was received, so nothing is kept


def test_unreachable_hub_falls_back_to_the_stand_in(online, monkeypatch, capsys):
    address = closed_port_url()
    with pytest.raises(download.DownloadError) as info:
        download.download(SPEC, endpoint=address)
    assert f"连不上 {address}" in str(info.value)
    assert_advice(str(info.value))
    assert_nothing_loadable(online, *SPEC.files)

    monkeypatch.setenv("HF_ENDPOINT", address)
    model, _ = loading.load_model("gpt2-chinese")
    assert model.course_source.source == "stand-in"
    assert "hf-mirror.com" in capsys.readouterr().out


# ---------------------------------------------------------------- 6 content that does not match the hub's hash/size


@pytest.mark.parametrize("filename, damage", [
    (BIN, "flipped"),      # same size, different bytes: caught by the sha256 (LFS file)
    (BIN, "short"),        # fewer bytes than X-Linked-Size
    (BIN, "long"),         # more bytes than X-Linked-Size
    ("vocab.txt", "flipped"),  # small file: caught by git's sha1
])
def test_corrupt_content_is_rejected_and_deleted(hub, online, repo_files, filename, damage):
    good = repo_files[filename]
    hub.body[filename] = {"flipped": good[:1000] + bytes([good[1000] ^ 1]) + good[1001:],
                          "short": good[:-100], "long": good + b"junk"}[damage]
    with pytest.raises(download.DownloadError) as info:
        download.download(SPEC, endpoint=hub.url)
    assert "校验失败" in str(info.value) and "failed verification" in str(info.value)
    assert_nothing_loadable(online, filename)
    assert partial_files(online) == []
    blobs = online / download.repo_folder(SPEC) / "blobs"
    expected = sha256(good) if filename == BIN else git_sha1(good)
    assert not (blobs / expected).exists()


def test_corrupt_file_in_local_dir_is_replaced(hub, online, repo_files, tmp_path):
    target = tmp_path / "models"
    target.mkdir()
    (target / BIN).write_bytes(b"not a model")  # e.g. an earlier broken copy
    download.download(SPEC, endpoint=hub.url, local_dir=target)
    assert (target / BIN).read_bytes() == repo_files[BIN]


# ---------------------------------------------------------------- 7 read-only and full disk


def test_read_only_cache_is_a_settings_error(hub, online, capsys):
    with pytest.MonkeyPatch.context() as patches:
        make_read_only(online, patches)
        try:
            with pytest.raises(download.DownloadSettingsError) as info:
                download.download(SPEC, endpoint=hub.url)
            assert "无法写入文件夹" in str(info.value) and "HF_HOME" in str(info.value)
            assert cli.main(["download", "gpt2-chinese", "--endpoint", hub.url]) == cli.USER_ERROR
            assert "--local-dir" in capsys.readouterr().err
        finally:
            online.chmod(0o755)
    assert hub.requests == []  # refused before going online
    assert not (online / download.repo_folder(SPEC)).exists()


def test_full_disk_deletes_the_partial_file(hub, online, monkeypatch):
    full = OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(download, "open_partial", lambda path: Interrupting(path, 100_000, full))
    with pytest.raises(download.DownloadError) as info:
        download.download(SPEC, endpoint=hub.url)
    assert "磁盘空间不足" in str(info.value) and "disk full" in str(info.value)
    assert_nothing_loadable(online, BIN)
    assert partial_files(online) == []


# ---------------------------------------------------------------- 9 HF_ENDPOINT after import, --endpoint


def test_hf_endpoint_set_after_import_is_honoured(hub, online, monkeypatch, repo_files):
    assert constants.ENDPOINT != hub.url  # huggingface_hub read HF_ENDPOINT long ago
    monkeypatch.setenv("HF_ENDPOINT", hub.url + "/")
    assert download.hub_endpoint() == hub.url
    folder = download.download(SPEC)
    assert (folder / BIN).read_bytes() == repo_files[BIN]
    assert len(hub.gets(BIN)) == 1


# ---------------------------------------------------------------- 10 the command line


def test_cli_download_exit_codes_and_messages(hub, online, monkeypatch, capsys, repo_files):
    monkeypatch.setenv("HF_ENDPOINT", closed_port_url())

    assert cli.main(["download", "gpt2-chinese"]) == 1
    out, err = capsys.readouterr()
    assert_advice(err)
    assert "Traceback" not in out + err

    assert cli.main(["download", "gpt2-chinese", "--endpoint", hub.url]) == 0  # --endpoint beats HF_ENDPOINT
    out, err = capsys.readouterr()
    assert str(snapshot(online)) in out
    assert (snapshot(online) / BIN).read_bytes() == repo_files[BIN]

    assert cli.main(["download", "no-such-model"]) == cli.USER_ERROR
    assert "gpt2-chinese" in capsys.readouterr().err
    assert cli.main(["download", "gpt2-chinese-chat", "--endpoint", "hf-mirror.com"]) == cli.USER_ERROR
    assert "https://" in capsys.readouterr().err


def test_cli_interrupt_and_local_dir(hub, online, monkeypatch, capsys, repo_files):
    plain_open = download.open_partial
    monkeypatch.setattr(download, "open_partial", lambda path: Interrupting(path, 50_000, KeyboardInterrupt()))
    assert cli.main(["download", "gpt2-chinese", "--endpoint", hub.url, "--local-dir"]) == 130
    assert "断点" in capsys.readouterr().err
    assert download.find_cached(SPEC) is None

    monkeypatch.setattr(download, "open_partial", plain_open)
    assert cli.main(["download", "gpt2-chinese", "--endpoint", hub.url, "--local-dir"]) == 0
    course_folder = download.course_models_dir() / SPEC.name
    assert course_folder.as_posix() in capsys.readouterr().out.replace(os.sep, "/")
    assert (course_folder / BIN).read_bytes() == repo_files[BIN]
    assert hub.gets(BIN)[-1].headers["range"].startswith("bytes=")  # resumed, not restarted


def test_offline_settings_refuse_to_download(hub, online, monkeypatch):
    monkeypatch.setenv("LLM_COURSE_OFFLINE", "1")
    with pytest.raises(download.DownloadSettingsError, match="LLM_COURSE_OFFLINE"):
        download.download(SPEC, endpoint=hub.url)
    monkeypatch.delenv("LLM_COURSE_OFFLINE")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # set when huggingface_hub was imported
    with pytest.raises(download.DownloadSettingsError, match="restart"):
        download.download(SPEC, endpoint=hub.url)
    assert hub.requests == []


# ---------------------------------------------------------------- safety: tokens and pickles


def test_token_never_appears_in_messages(hub, online, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    hub.status["*"] = 500
    hub.echo_auth = True  # a server that repeats the token in its error answer
    with pytest.raises(download.DownloadError) as info:
        download.download(SPEC, endpoint=hub.url)
    assert hub.requests[0].headers["authorization"] == f"Bearer {SECRET}"  # the token was really used
    assert SECRET in str(info.value.original)  # the leaky server did put it into huggingface_hub's error
    assert cli.main(["download", "gpt2-chinese", "--endpoint", hub.url]) == 1
    out, err = capsys.readouterr()
    for text in (str(info.value), repr(info.value), out, err):
        assert SECRET not in text


class Payload:
    """Pickles to a call of os.mkdir(marker): what a malicious pytorch_model.bin could run."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def test_malicious_pickle_in_pytorch_model_bin_is_refused(repo_files, online, tmp_path):
    marker = tmp_path / "payload-ran"
    buffer = io.BytesIO()
    torch.save({"transformer.wte.weight": Payload(marker)}, buffer)
    evil = dict(repo_files, **{BIN: buffer.getvalue()})
    with FakeHub({SPEC.hub_id: evil}) as server:
        folder = download.download(SPEC, endpoint=server.url)  # its hash is right: the download succeeds

    with pytest.raises((pickle.UnpicklingError, OSError, RuntimeError)) as info:
        loading.load_model("gpt2-chinese", quiet=True)  # picks the hub cache, transformers refuses the pickle
    assert "weights_only" in str(info.value) or "Unsupported global" in str(info.value)
    assert not marker.exists()

    torch.load(folder / BIN, weights_only=False)  # control: the payload is live when unpickling is unrestricted
    assert marker.is_dir()


# ---------------------------------------------------------------- 11 redirects: the token stays with the hub


def assert_token_only_at_the_hub(hub: FakeHub, cdn: FakeHub) -> None:
    """Every request to the hub carried the token; none of those to the other host did (and there were some)."""
    assert hub.requests and all(r.headers.get("authorization") == f"Bearer {SECRET}" for r in hub.requests)
    assert cdn.gets(BIN), "nothing was fetched from the other host"
    for request in cdn.requests:
        assert "authorization" not in request.headers, f"{request.method} {request.path} carried the token"
        assert SECRET not in str(request.headers)


def test_redirect_to_a_cdn_on_another_host_never_carries_the_token(hub, cdn, online, repo_files, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    hub.redirect[BIN] = cdn.url  # HEAD and GET of the weights answer 302 -> 127.0.0.2, as the real hub does
    cdn.drop_after[BIN] = 300_000  # ... and the CDN drops the connection once: the resume goes there too

    folder = download.download(SPEC, endpoint=hub.url)

    assert (folder / BIN).read_bytes() == repo_files[BIN]
    assert [r.method for r in hub.requests if r.filename == BIN and r.method == "GET"] == []  # bytes came from the CDN
    first, second = cdn.gets(BIN)
    assert "range" not in first.headers and second.headers["range"].startswith("bytes=")
    assert_token_only_at_the_hub(hub, cdn)
    assert partial_files(online) == []


def test_a_get_redirected_to_another_host_drops_the_token(hub, cdn, online, repo_files, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    hub.get_redirect[BIN] = cdn.url  # HEAD says "here", GET says "over there": the HTTP client follows

    folder = download.download(SPEC, endpoint=hub.url)

    assert (folder / BIN).read_bytes() == repo_files[BIN]
    assert len(hub.gets(BIN)) == 1 and len(cdn.gets(BIN)) == 1
    assert_token_only_at_the_hub(hub, cdn)


# ---------------------------------------------------------------- 12 a server that does not answer like the hub


@pytest.mark.parametrize("missing", [{"etag", "x-linked-etag"}, {"x-repo-commit"}])
def test_answer_without_etag_or_commit_is_not_a_hub(hub, online, missing):
    hub.omit = missing  # e.g. a proxy or a plain web server
    with pytest.raises(download.DownloadError) as info:
        download.download(SPEC, endpoint=hub.url)
    assert "不是 Hugging Face 镜像" in str(info.value) and "missing X-Repo-Commit/ETag" in str(info.value)
    assert_advice(str(info.value))
    assert [r for r in hub.requests if r.method == "GET"] == []  # refused before any byte moved
    assert not (online / download.repo_folder(SPEC) / "blobs").exists() or not any(
        (online / download.repo_folder(SPEC) / "blobs").iterdir())
    assert_nothing_loadable(online, *SPEC.files)


@pytest.mark.parametrize("etag", ["../../../escaped", "..", ".hidden", "a/b"])
def test_an_etag_that_would_be_a_path_outside_the_cache_is_refused(hub, online, tmp_path, etag):
    hub.etag[BIN] = etag  # the blob's file name comes from the ETag
    before = sorted(p for p in tmp_path.rglob("*") if "hf" not in p.relative_to(tmp_path).parts[:1])
    with pytest.raises(download.DownloadError) as info:
        download.download(SPEC, endpoint=hub.url)
    assert "不是 Hugging Face 镜像" in str(info.value)
    assert hub.gets(BIN) == []
    after = sorted(p for p in tmp_path.rglob("*") if "hf" not in p.relative_to(tmp_path).parts[:1])
    assert after == before  # nothing written outside the cache
    assert not list(online.rglob("*escaped*")) and not list(online.rglob("*.incomplete"))


def test_an_etag_that_is_no_hash_still_checks_the_size(hub, online, repo_files):
    hub.etag[BIN] = "mirror-etag-0001"  # some mirrors: an opaque ETag, only the size can be verified
    hub.body[BIN] = repo_files[BIN] + b"junk"
    with pytest.raises(download.DownloadError, match="校验失败"):
        download.download(SPEC, endpoint=hub.url)
    assert_nothing_loadable(online, BIN)
    assert partial_files(online) == []

    hub.body.clear()
    folder = download.download(SPEC, endpoint=hub.url)
    assert (folder / BIN).read_bytes() == repo_files[BIN]
    assert (online / download.repo_folder(SPEC) / "blobs" / "mirror-etag-0001").is_file()


# ---------------------------------------------------------------- 13 refused, rate-limited, timed out


@pytest.mark.parametrize("status", [401, 403])
def test_access_denied_says_login_or_proxy(hub, online, status, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    hub.status["*"] = status
    hub.echo_auth = True
    with pytest.raises(download.DownloadError) as info:
        download.download(SPEC, endpoint=hub.url)
    message = str(info.value)
    assert f"HTTP {status}" in message and "HF_TOKEN" in message and "代理" in message
    assert_advice(message)
    assert SECRET not in message
    assert_nothing_loadable(online, *SPEC.files)


@pytest.mark.parametrize("status", [408, 429])
def test_rate_limit_in_the_middle_keeps_the_partial_file_for_the_next_call(hub, online, repo_files, no_backoff,
                                                                           status):
    hub.drop_after[BIN] = 300_000
    hub.down_after_drop = status  # the connection drops, then the server says "too many requests" / "timeout"
    with pytest.raises(download.DownloadError) as info:
        download.download(SPEC, endpoint=hub.url)
    assert f"HTTP {status}" in str(info.value) and "断点" in str(info.value)
    assert no_backoff, "huggingface_hub retried with a pause before giving up"
    assert_nothing_loadable(online, BIN)
    [partial] = partial_files(online)
    kept = partial.stat().st_size
    assert 0 < kept <= 300_000 and partial.read_bytes() == repo_files[BIN][:kept]

    hub.get_status.clear()
    folder = download.download(SPEC, endpoint=hub.url)
    assert hub.gets(BIN)[-1].headers["range"] == f"bytes={kept}-"
    assert (folder / BIN).read_bytes() == repo_files[BIN]
    assert partial_files(online) == []


# ---------------------------------------------------------------- 14 what an earlier run left in the cache


def test_a_partial_file_longer_than_the_file_starts_over(hub, online, repo_files):
    blobs = online / download.repo_folder(SPEC) / "blobs"
    blobs.mkdir(parents=True)
    (blobs / f"{sha256(repo_files[BIN])}.incomplete").write_bytes(repo_files[BIN] + b"x" * 5000)

    folder = download.download(SPEC, endpoint=hub.url)

    assert "range" not in hub.gets(BIN)[-1].headers  # not resumed from a wrong offset
    assert (folder / BIN).read_bytes() == repo_files[BIN]
    assert partial_files(online) == []


def test_a_complete_but_corrupt_partial_file_is_deleted_not_renamed(hub, online, repo_files):
    blobs = online / download.repo_folder(SPEC) / "blobs"
    blobs.mkdir(parents=True)
    good = repo_files[BIN]
    (blobs / f"{sha256(good)}.incomplete").write_bytes(bytes([good[0] ^ 1]) + good[1:])  # right size, wrong bytes

    with pytest.raises(download.DownloadError, match="校验失败"):
        download.download(SPEC, endpoint=hub.url)
    assert_nothing_loadable(online, BIN)
    assert partial_files(online) == [] and not (blobs / sha256(good)).exists()

    folder = download.download(SPEC, endpoint=hub.url)  # the next run starts clean
    assert (folder / BIN).read_bytes() == good


def test_a_corrupt_blob_and_a_corrupt_pointer_in_the_cache_are_replaced(hub, online, repo_files):
    folder = download.download(SPEC, endpoint=hub.url)
    blob = (folder / BIN).resolve()
    blob.write_bytes(b"\0" * len(repo_files[BIN]))  # e.g. a disk error, or another tool wrote there
    (folder / "config.json").unlink()
    (folder / "config.json").write_bytes(b"{}")  # a plain file where the link was, with the wrong content
    (folder / "vocab.txt").unlink()  # incomplete snapshot: download() goes online again

    assert download.download(SPEC, endpoint=hub.url) == folder
    assert {name: (folder / name).read_bytes() for name in SPEC.files} == repo_files
    assert blob.read_bytes() == repo_files[BIN]


def test_repository_changed_during_the_download_is_reported_and_the_next_run_succeeds(
        hub, online, repo_files, monkeypatch):
    on_main = dataclasses.replace(SPEC, revision="main")
    plain_save = download.save_to_cache

    def push_after_first_file(spec, remote, cache, endpoint):
        plain_save(spec, remote, cache, endpoint)
        hub.commit = "c" * 40  # someone pushed to main after the first file arrived

    monkeypatch.setattr(download, "save_to_cache", push_after_first_file)
    with pytest.raises(download.DownloadError, match="changed during the download"):
        download.download(on_main, endpoint=hub.url)
    assert download.find_cached(on_main) is None

    monkeypatch.setattr(download, "save_to_cache", plain_save)
    folder = download.download(on_main, endpoint=hub.url)
    assert folder.name == "c" * 40
    assert {name: (folder / name).read_bytes() for name in SPEC.files} == repo_files


# ---------------------------------------------------------------- 15 settings, advice and secrets (no server)


@pytest.mark.parametrize("variable", ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"])
def test_hub_offline_variables_refuse_inside_download(hub, online, monkeypatch, variable):
    monkeypatch.setenv(variable, "1")
    with pytest.raises(download.DownloadSettingsError, match="HF_HUB_OFFLINE=1") as info:
        download.download(SPEC, endpoint=hub.url)
    assert "替身模型" in str(info.value)
    assert hub.requests == []


def test_when_the_mirror_itself_fails_the_advice_names_another_address(hub, online, monkeypatch):
    monkeypatch.setattr(download, "MIRROR_ENDPOINT", hub.url)  # pretend the fake hub is hf-mirror.com
    hub.status["*"] = 503
    with pytest.raises(download.DownloadError) as info:
        download.download(SPEC, endpoint=hub.url)
    message = str(info.value)
    assert f"镜像 {hub.url} 也失败了" in message and f"--endpoint 换一个地址（例如 {download.DEFAULT_ENDPOINT}）" in message
    assert f"--endpoint {hub.url}" not in message  # not advised to use what just failed


def test_redact_scrubs_tokens_from_the_environment_the_login_file_and_the_text(monkeypatch, tmp_path):
    login = tmp_path / "token"
    login.write_text("saved-login-secret\n")
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(login))
    monkeypatch.setenv("HF_TOKEN", "env-secret-value")
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    text = "a env-secret-value b saved-login-secret c hf_AbCdEfGh12345678 d hf_short"
    assert download.redact(text) == "a *** b *** c hf_*** d hf_short"


def test_cache_folders_follow_huggingface_hub_precedence(monkeypatch, tmp_path):
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME", "LLM_COURSE_CACHE",
                 "LLM_COURSE_MODELS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert download.hub_cache_dir() == tmp_path / "home" / ".cache" / "huggingface" / "hub"
    assert download.course_models_dir() == tmp_path / "home" / ".cache" / "llm-course" / "models"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert download.hub_cache_dir() == tmp_path / "xdg" / "huggingface" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    assert download.hub_cache_dir() == tmp_path / "hf-home" / "hub"
    monkeypatch.setenv("HUGGINGFACE_HUB_CACHE", str(tmp_path / "old-name"))
    assert download.hub_cache_dir() == tmp_path / "old-name"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    assert download.hub_cache_dir() == tmp_path / "hub-cache"
    assert download.hub_cache_dir(tmp_path / "argument") == tmp_path / "argument"  # an explicit folder wins
    monkeypatch.setenv("LLM_COURSE_CACHE", str(tmp_path / "course"))
    assert download.course_models_dir() == tmp_path / "course" / "models"
    monkeypatch.setenv("LLM_COURSE_MODELS", str(tmp_path / "by-hand"))
    assert download.course_models_dir() == tmp_path / "by-hand"


# ---------------------------------------------------------------- 16 load_model's other two sources


def test_load_model_downloads_the_real_model_when_online(hub, online, repo_files, monkeypatch, capsys):
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    model, tokenizer = loading.load_model("gpt2-chinese")
    assert model.course_source.source == "download"
    assert "已从模型仓库下载" in capsys.readouterr().out
    assert [r.filename for r in hub.requests if r.method == "GET"] == list(SPEC.files)
    served = torch.load(io.BytesIO(repo_files[BIN]), weights_only=True)
    assert torch.equal(model.transformer.wte.weight, served["transformer.wte.weight"])
    assert download.find_cached(SPEC) == snapshot(online)


def test_load_model_uses_a_hand_downloaded_folder_without_going_online(online, repo_files, monkeypatch, capsys):
    folder = download.course_models_dir() / SPEC.name
    folder.mkdir(parents=True)
    for name, data in repo_files.items():
        (folder / name).write_bytes(data)
    monkeypatch.setenv("HF_ENDPOINT", closed_port_url())  # the hub is unreachable: not needed
    model, _ = loading.load_model("gpt2-chinese")
    assert model.course_source.source == "hub-cache"
    assert f"在 {folder} 找到手动下载的真实模型" in capsys.readouterr().out
    served = torch.load(io.BytesIO(repo_files[BIN]), weights_only=True)
    assert torch.equal(model.transformer.wte.weight, served["transformer.wte.weight"])
    (folder / "vocab.txt").unlink()  # an incomplete folder is not used
    assert download.find_cached(SPEC) is None
