"""Encoding, decoding and the vocab.txt line numbers of the tokenization lesson."""

import warnings

import pytest
from helpers.loading import uer_vocab_file

from helpers.tokens import (
    CourseNotice,
    decode,
    encode,
    format_token_table,
    token_table,
    unknown_characters,
    vocab_line,
    warn_unknown,
)

SEED_IDS = [101, 791, 1921, 1921, 3698, 4696]


def test_vocab_is_the_uer_vocab(bert_tokenizer):
    assert len(bert_tokenizer) == 21128
    ids = bert_tokenizer.convert_tokens_to_ids(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "今"])
    assert ids == [0, 100, 101, 102, 103, 791]


def test_seed_prompt_ids(bert_tokenizer):
    assert encode(bert_tokenizer, "[CLS]今天天气真") == SEED_IDS


def test_encode_adds_no_special_tokens_but_the_tokenizer_would(bert_tokenizer):
    assert bert_tokenizer.encode("今天") == [101, 791, 1921, 102]
    assert encode(bert_tokenizer, "今天") == [791, 1921]


def test_token_table_rows_and_vocab_lines(bert_tokenizer):
    rows = token_table(bert_tokenizer, "[CLS]今天天气真")
    assert [r.token for r in rows] == ["[CLS]", "今", "天", "天", "气", "真"]
    assert [r.id for r in rows] == SEED_IDS
    assert [r.vocab_line for r in rows] == [102, 792, 1922, 1922, 3699, 4697]
    assert [r.special for r in rows] == [True, False, False, False, False, False]


def test_vocab_line_is_the_line_of_the_file(bert_tokenizer):
    lines = uer_vocab_file().read_text(encoding="utf-8").split("\n")
    for token_id in SEED_IDS:
        assert lines[vocab_line(token_id) - 1] == bert_tokenizer.convert_ids_to_tokens(token_id)


def test_decode_removes_spaces_between_chinese_characters(bert_tokenizer):
    ids = encode(bert_tokenizer, "[CLS]今天天气真好[SEP]是的，你呢？")
    assert bert_tokenizer.decode(ids) == "[CLS] 今 天 天 气 真 好 [SEP] 是 的 ， 你 呢 ？"
    assert decode(bert_tokenizer, ids) == "[CLS]今天天气真好[SEP]是的，你呢？"
    assert decode(bert_tokenizer, ids, skip_special_tokens=True) == "今天天气真好是的，你呢？"


def test_decode_keeps_spaces_between_english_words(bert_tokenizer):
    ids = encode(bert_tokenizer, "hello world 你好")
    assert decode(bert_tokenizer, ids) == "hello world你好"


def test_curly_quotes_are_unknown_and_reported(bert_tokenizer):
    text = "他说“好”"
    rows = token_table(bert_tokenizer, text)
    assert [r.unknown for r in rows] == [False, False, True, False, True]
    assert unknown_characters(bert_tokenizer, text) == ["“", "”"]
    with pytest.warns(CourseNotice, match="UNK"):
        warn_unknown(bert_tokenizer, text)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert warn_unknown(bert_tokenizer, '他说"好"') == []


def test_format_token_table_marks_special_and_unknown(bert_tokenizer):
    table = format_token_table(token_table(bert_tokenizer, "[CLS]今“"))
    lines = table.splitlines()
    assert len(lines) == 4
    assert "101" in lines[1] and "102" in lines[1] and "特殊" in lines[1]
    assert "791" in lines[2] and "792" in lines[2]
    assert "[UNK]" in lines[3]
