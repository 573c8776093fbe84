"""helpers.provenance: looking a stand-in's sentence up in the training data shipped with it."""

from __future__ import annotations

import lzma

import pytest

from helpers import find_in_training_data, generate
from helpers.provenance import DATA_FILE, longest_shared_span, training_lines
from helpers.registry import STANDIN_DIR
from training.dialogue_topics import TOPICS
from training.ship_training_data import ship


def test_shipped_files_hold_the_training_samples() -> None:
    chat = training_lines("gpt2-chinese-chat")
    base = training_lines("gpt2-chinese")
    # the split written by `python -m training.build_corpus build` (numbers in the model cards)
    assert len(chat) == 15435 and len(base) == 16002
    assert all(line.startswith("[CLS]") and line.endswith("[SEP]") for line in chat)
    assert all(line.startswith("[CLS]") for line in base)
    assert "[CLS]外面跟火炉一样[SEP]开空调凉快一下吧[SEP]" in chat


def test_a_sentence_from_the_training_dialogues_is_found_exactly() -> None:
    reply = TOPICS[0][1][0]  # "是啊，我们出去走走吧", a reply of the first topic
    result = find_in_training_data(reply, "gpt2-chinese-chat")
    assert result.exact and result.span == reply
    assert reply in result.line and result.count >= 20
    assert training_lines("gpt2-chinese-chat")[result.line_number - 1] == result.line
    assert str(result).startswith("原样出现在 gpt2-chinese-chat 的训练数据里")


def test_spaces_and_case_do_not_matter() -> None:
    # decoded uer text has spaces between characters and is lower-cased by the tokenizer
    result = find_in_training_data("开 空 调 凉 快 一 下 吧", "gpt2-chinese-chat")
    assert result.exact and result.span == "开空调凉快一下吧"
    assert find_in_training_data("thinkpad", "gpt2-chinese").exact  # the reviews write THINKPAD


def test_a_novel_sentence_is_not_found() -> None:
    result = find_in_training_data("量子计算机的退相干时间", "gpt2-chinese-chat")
    assert not result.exact
    assert len(result.span) < 5 and result.span in "量子计算机的退相干时间"
    assert str(result).startswith("整句不在 gpt2-chinese-chat 的训练数据里")


def test_a_partial_overlap_returns_the_longest_shared_span() -> None:
    result = find_in_training_data("我们出去走走吧，顺便研究量子力学", "gpt2-chinese-chat")
    assert not result.exact
    assert result.span == "我们出去走走吧"
    assert result.span in result.line and result.count >= 20
    assert "最长的共同片段是「我们出去走走吧」（7 个字符" in str(result)


def test_longest_shared_span_on_small_examples() -> None:
    assert longest_shared_span("abcdef", "xxcdeyy\nabz") == "cde"
    assert longest_shared_span("abc", "abc") == "abc"
    assert longest_shared_span("abc", "xyz") == ""
    assert longest_shared_span("ab", "b\na") == "a"  # the first of two equally long pieces


def test_a_real_greedy_reply_of_the_chat_standin_is_found(gpt2_chat) -> None:
    model, tokenizer = gpt2_chat
    reply = generate(model, tokenizer, "[CLS]你好[SEP]", max_new_tokens=40, stop_tokens=["[SEP]"])
    assert reply.stopped_by == "stop_token"
    text = reply.text.removesuffix("[SEP]")
    result = find_in_training_data(text, "gpt2-chinese-chat")
    assert result.exact and len(text) >= 5, text
    # it was trained as the reply to exactly this turn
    assert any(line.startswith(f"[CLS]你好[SEP]{text}[SEP]") for line in training_lines("gpt2-chinese-chat"))


def test_base_standin_sentence_is_found() -> None:
    result = find_in_training_data("今天天气真好，我们一起去公园散步吧。", "gpt2-chinese")
    assert result.exact and result.line.startswith("[CLS]")


def test_bad_input_gets_a_clear_error() -> None:
    with pytest.raises(ValueError, match="空的"):
        find_in_training_data("  ", "gpt2-chinese-chat")
    with pytest.raises(ValueError, match="一次只查一行"):
        find_in_training_data("你好\n再见", "gpt2-chinese-chat")
    with pytest.raises(ValueError, match="没有替身模型"):
        find_in_training_data("hello", "smollm2")
    with pytest.raises(Exception, match="未知的模型名"):
        find_in_training_data("你好", "no-such-model")


def test_ship_writes_what_the_corpus_holds(tmp_path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "base_train.txt").write_text("[CLS]今天天气真好。\n[CLS]我们走吧。\n", encoding="utf-8")
    (corpus / "chat_train.txt").write_text("[CLS]你好[SEP]你好呀[SEP]\n", encoding="utf-8")
    for name in ("gpt2-chinese-base", "gpt2-chinese-chat"):
        (tmp_path / "standins" / name).mkdir(parents=True)
    sizes = ship(corpus, tmp_path / "standins")
    assert set(sizes) == {"gpt2-chinese-base", "gpt2-chinese-chat"}
    with lzma.open(tmp_path / "standins" / "gpt2-chinese-chat" / DATA_FILE, "rt", encoding="utf-8") as f:
        assert f.read() == "[CLS]你好[SEP]你好呀[SEP]\n"


def test_shipped_files_are_small() -> None:
    sizes = {name: (STANDIN_DIR / name / DATA_FILE).stat().st_size
             for name in ("gpt2-chinese-base", "gpt2-chinese-chat")}
    assert sizes["gpt2-chinese-base"] < 1_500_000 and sizes["gpt2-chinese-chat"] < 200_000, sizes
