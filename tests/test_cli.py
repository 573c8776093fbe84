"""`python -m helpers`: JSON contracts, greedy default, sampling options reaching `generate`, exit codes
(2 user errors, 1 doctor failures, 130 Ctrl-C), and the chat loop."""

import json
import subprocess
import sys

import pytest

from helpers import __main__ as cli
from helpers import doctor
from helpers.__main__ import main
from helpers.chat import ChatSession
from helpers.generation import generate
from helpers.loading import converted_gguf_dir
from helpers.registry import get_spec


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


SAMPLING = ("--max-new-tokens", "12", "--temperature", "1.5", "--top-k", "50", "--top-p", "0.95", "--seed", "3")
SETTINGS = {"temperature": 1.5, "top_k": 50, "top_p": 0.95, "seed": 3}  # the same, as generate's arguments


def test_generate_honours_every_sampling_option(capsys, gpt2_base):
    model, tok = gpt2_base
    first = json.loads(run(capsys, "generate", "[CLS]今天", *SAMPLING, "--json")[1])
    second = json.loads(run(capsys, "generate", "[CLS]今天", *SAMPLING, "--json")[1])
    assert first["token_ids"] == second["token_ids"]  # seeded
    assert first["token_ids"] == generate(model, tok, "[CLS]今天", 12, **SETTINGS).new_ids  # options reached it
    assert first["token_ids"] != generate(model, tok, "[CLS]今天", 12).new_ids  # sampled, not greedy
    for option, value in (("temperature", 0.7), ("top_k", 5), ("top_p", 0.5), ("seed", 4)):
        argv = list(SAMPLING)
        argv[argv.index("--" + option.replace("_", "-")) + 1] = str(value)
        other = json.loads(run(capsys, "generate", "[CLS]今天", *argv, "--json")[1])
        assert other["token_ids"] != first["token_ids"], f"--{option} {value} changed nothing"
        assert other["token_ids"] == generate(model, tok, "[CLS]今天", 12, **{**SETTINGS, option: value}).new_ids


def test_greedy_flag_wins_over_a_temperature(capsys, gpt2_base):
    model, tok = gpt2_base
    payload = json.loads(run(capsys, "generate", "[CLS]今天", *SAMPLING, "--greedy", "--json")[1])
    assert payload["token_ids"] == generate(model, tok, "[CLS]今天", 12).new_ids


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


def test_bad_arguments_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["generate"])  # the prompt is missing: argparse's usage error
    assert info.value.code == 2 and "prompt" in capsys.readouterr().err


@pytest.mark.slow
def test_bad_arguments_exit_2_as_a_process():
    result = subprocess.run([sys.executable, "-m", "helpers", "generate"], capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr


@pytest.mark.parametrize("error, code, fragment", [
    (FileNotFoundError("没有找到文件 model.safetensors"), 2, "没有找到文件 model.safetensors"),
    (KeyboardInterrupt(), 130, "已中断"),
])
def test_missing_files_and_ctrl_c_end_with_an_exit_code_not_a_traceback(capsys, monkeypatch, error, code, fragment):
    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(cli, "load_model", fail)
    exit_code, out, err = run(capsys, "generate", "[CLS]今天")
    assert exit_code == code and fragment in err and "Traceback" not in out + err


def test_download_smollm2_offline_converts_the_gguf(capsys, smollm2):
    code, out, _ = run(capsys, "download", "smollm2")  # LLM_COURSE_OFFLINE=1 (conftest)
    assert code == 0
    assert out.strip() == f"离线模式：已准备好 {converted_gguf_dir(get_spec('smollm2'))}"


def test_models_lists_every_model(capsys):
    code, out, _ = run(capsys, "models")
    assert code == 0
    assert [line.split()[0] for line in out.strip().splitlines()] == ["gpt2-chinese", "gpt2-chinese-chat", "smollm2", "gemma3-270m"]


def test_doctor_reports_ok_lines(capsys):
    code, out, _ = run(capsys, "doctor")
    lines = out.strip().splitlines()
    assert all(line.startswith(("[OK]", "[FAIL]")) for line in lines)
    assert any("中文字体" in line and line.startswith("[OK]") for line in lines)
    assert any(line.startswith("[OK] smollm2") for line in lines)
    assert code == (0 if all(line.startswith("[OK]") for line in lines) else 1)


def test_doctor_exits_1_and_names_what_is_missing(capsys, monkeypatch):
    monkeypatch.setattr(doctor, "kernel_registered", lambda: False)
    monkeypatch.setattr(doctor, "version_of", lambda package: None if package == "nbval" else "1.0")
    code, out, _ = run(capsys, "doctor")
    assert code == 1
    assert "[FAIL] nbval: 未安装：请运行 make setup" in out.splitlines()
    assert any(line.startswith("[FAIL] Jupyter 内核") and "make setup" in line for line in out.splitlines())


@pytest.mark.parametrize("ending", ["", EOFError])
def test_chat_keeps_the_history_and_ends_on_an_empty_line_or_ctrl_d(monkeypatch, capsys, gpt2_chat, ending):
    turns = iter(["今天天气真好", "你在做什么", ending])

    def answer(prompt=""):
        turn = next(turns)
        if turn is EOFError:
            raise EOFError  # Ctrl-D
        return turn

    monkeypatch.setattr("builtins.input", answer)
    code, out, _ = run(capsys, "chat", "--max-new-tokens", "20")
    assert code == 0
    model, tok = gpt2_chat
    session = ChatSession(model, tok, "gpt2-chinese-chat")
    replies = [session.say("今天天气真好", 20), session.say("你在做什么", 20)]  # the second sees the first
    assert [line for line in out.splitlines() if line.startswith("模型：")] == ["模型：" + r for r in replies]
