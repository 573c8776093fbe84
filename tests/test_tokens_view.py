"""How tokens are shown to learners: readable byte-level pieces and the coloured token chips."""

import re

import pytest

from helpers.tokens import BYTE_OF_CHAR, looks_byte_level, readable_token, show_bytes, token_table, tokens_html


def chip_texts(html_text: str) -> list[tuple[str, str]]:
    """(label, small print) of every chip."""
    return re.findall(r"<b>(.*?)</b><br><small>(.*?)</small>", html_text)


def test_byte_alphabet_covers_every_byte_once():
    assert sorted(BYTE_OF_CHAR.values()) == list(range(256))
    assert BYTE_OF_CHAR["Ġ"] == ord(" ") and BYTE_OF_CHAR["Ċ"] == ord("\n") and BYTE_OF_CHAR["A"] == ord("A")


def test_byte_alphabet_agrees_with_smollm2s_own_decoder(smollm2):
    _, tokenizer = smollm2
    tokens = tokenizer.convert_ids_to_tokens(list(range(0, len(tokenizer), 23)))
    for token in tokens:
        if token in tokenizer.all_special_tokens:
            continue
        ours = bytes(BYTE_OF_CHAR[ch] for ch in token).decode("utf-8", errors="replace")
        assert ours == tokenizer.convert_tokens_to_string([token]), token


@pytest.mark.parametrize(
    ("token", "shown"),
    [
        ("Ġworld", "␣world"),
        ("ĊĠ", "↵␣"),
        ("ä½ł", "你"),  # the three bytes of 你 in one token
        ("ä½", "⟨e4 bd⟩"),  # only the first two: not a whole character
        ("ł", "⟨a0⟩"),
        ("ï¼Į", "，"),
        ("Hello", "Hello"),
    ],
)
def test_readable_byte_level_pieces(token, shown):
    assert readable_token(token) == shown
    assert readable_token(token, byte_level=True) == shown


@pytest.mark.parametrize("token", ["[CLS]", "##的", "今", "[UNK]", "<|im_end|>"])
def test_character_vocab_tokens_stay_as_they_are(token):
    assert readable_token(token) == token
    assert readable_token(token, byte_level=False) == token


def test_byte_level_can_be_switched_off():
    assert readable_token("ä½", byte_level=False) == "ä½"


def test_show_bytes_decodes_whole_characters_and_keeps_the_rest_as_hex():
    assert show_bytes("你".encode()) == "你"
    assert show_bytes("你".encode()[:2] + b"a b\n") == "⟨e4 bd⟩a␣b↵"
    assert show_bytes(b"\x0d") == "⟨0d⟩"


def test_looks_byte_level():
    assert looks_byte_level(["ä½", "ł"])
    assert looks_byte_level(["Hello", "Ġworld"])
    assert not looks_byte_level(["[CLS]", "今", "天"])
    assert not looks_byte_level(["Hello", "world"])  # plain ASCII: nothing to decode
    assert not looks_byte_level([])


def test_chips_for_the_chinese_vocab_show_id_and_vocab_line(bert_tokenizer):
    html_text = tokens_html(token_table(bert_tokenizer, "[CLS]今天“好”"))
    chips = chip_texts(html_text)
    assert [label for label, _ in chips] == ["[CLS]", "今", "天", "[UNK]", "好", "[UNK]"]
    assert chips[0][1] == "id 101<br>行 102" and chips[1][1] == "id 791<br>行 792"
    assert html_text.count("#d6e4ff") == 2  # [CLS] chip and its legend entry
    assert html_text.count("#f8d7da") == 3  # two [UNK] chips and the legend entry
    assert "特殊词元" in html_text and "[UNK]：词表里没有的字符" in html_text


def test_chips_for_smollm2_show_byte_pieces_and_the_character_they_make(smollm2):
    _, tokenizer = smollm2
    rows = token_table(tokenizer, "你好 hi")
    chips = chip_texts(tokens_html(rows))
    assert [label for label, _ in chips] == ["⟨e4 bd⟩", "⟨a0⟩", "⟨e5 a5⟩", "⟨bd⟩", "␣hi"]
    assert chips[1][1] == f"id {rows[1].id}<br>拼成「你」"
    assert chips[3][1] == f"id {rows[3].id}<br>拼成「好」"
    assert all("行" not in small for _, small in chips)  # no vocab.txt for a BPE vocabulary


def test_chips_escape_html(bert_tokenizer):
    html_text = tokens_html(token_table(bert_tokenizer, "<b>"))
    assert "<b><</b>" not in html_text and "&lt;" in html_text
