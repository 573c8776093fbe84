"""`python -m helpers`: JSON contracts, greedy default, and exit code 2 for user errors."""

import json
import subprocess
import sys

import pytest

from helpers.__main__ import main
from helpers.generation import generate


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_tokenize_json_contract(capsys):
    code, out, _ = run(capsys, "tokenize", "[CLS]今天天气真", "--json")
    assert code == 0
    assert json.loads(out) == [
        {"token": "[CLS]", "id": 101}, {"token": "今", "id": 791}, {"token": "天", "id": 1921},
        {"token": "天", "id": 1921}, {"token": "气", "id": 3698}, {"token": "真", "id": 4696},
    ]


def test_tokenize_table_shows_vocab_lines(capsys):
    code, out, _ = run(capsys, "tokenize", "[CLS]今")
    assert code == 0 and "792" in out and "102" in out


def test_generate_json_contract_is_greedy_by_default(capsys, gpt2_base):
    code, out, _ = run(capsys, "generate", "[CLS]今天天气真", "--max-new-tokens", "8", "--json")
    assert code == 0
    payload = json.loads(out)
    assert set(payload) == {"prompt", "text", "token_ids", "model", "source"}
    model, tok = gpt2_base
    expected = generate(model, tok, "[CLS]今天天气真", 8)
    assert payload["token_ids"] == expected.new_ids and payload["text"] == expected.text
    assert (payload["prompt"], payload["model"], payload["source"]) == ("[CLS]今天天气真", "gpt2-chinese", "stand-in")


def test_generate_sampling_is_seeded(capsys):
    args = ("generate", "[CLS]今天", "--max-new-tokens", "6", "--temperature", "1.2", "--top-k", "50",
            "--top-p", "0.9", "--seed", "3", "--json")
    first = json.loads(run(capsys, *args)[1])
    second = json.loads(run(capsys, *args)[1])
    assert first["token_ids"] == second["token_ids"]


def test_generate_smollm2(capsys):
    code, out, _ = run(capsys, "generate", "The capital of France is", "--model", "smollm2",
                       "--max-new-tokens", "5", "--json")
    assert code == 0 and "Paris" in json.loads(out)["text"]


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (("generate", ""), "为空"),
        (("generate", "[CLS]今天", "--max-new-tokens", "-3"), "max_new_tokens"),
        (("generate", "[CLS]今天", "--temperature", "-1"), "temperature"),
        (("generate", "[CLS]今天", "--temperature", "1", "--top-k", "0"), "top_k"),
        (("generate", "[CLS]今天", "--temperature", "1", "--top-p", "1.5"), "top_p"),
        (("generate", "[CLS]今天", "--model", "gpt5"), "gpt2-chinese"),
        (("tokenize", "你好", "--model", "nope"), "未知的模型名"),
    ],
)
def test_user_errors_exit_2_without_traceback(capsys, argv, fragment):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert fragment in err and "Traceback" not in err


def test_bad_arguments_exit_2():
    result = subprocess.run([sys.executable, "-m", "helpers", "generate"], capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_models_lists_every_model(capsys):
    code, out, _ = run(capsys, "models")
    assert code == 0
    assert [line.split()[0] for line in out.strip().splitlines()] == ["gpt2-chinese", "gpt2-chinese-chat", "smollm2"]


def test_doctor_reports_ok_lines(capsys):
    code, out, _ = run(capsys, "doctor")
    lines = out.strip().splitlines()
    assert all(line.startswith(("[OK]", "[FAIL]")) for line in lines)
    assert any("中文字体" in line and line.startswith("[OK]") for line in lines)
    assert any(line.startswith("[OK] smollm2") for line in lines)
    assert code == (0 if all(line.startswith("[OK]") for line in lines) else 1)


def test_chat_reads_turns_until_an_empty_line(monkeypatch, capsys):
    answers = iter(["今天天气真好", ""])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(answers))
    code, out, _ = run(capsys, "chat", "--max-new-tokens", "20")
    assert code == 0 and out.count("模型：") == 1
