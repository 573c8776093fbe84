"""Text to tokens to ids and back, the way the lessons do it.

The Chinese GPT2 models use a BERT-style vocabulary (vocab.txt, one token a line): the token with id N
sits on line N + 1 of the file. We write special tokens such as `[CLS]` into the text ourselves, so we
always encode with `add_special_tokens=False`.
"""

from __future__ import annotations

import html
import re
import warnings
from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

# A space that sits next to a non-ASCII character (Chinese text, full-width punctuation) or next to
# the bracket of a special token is an artefact of decoding a character-level vocabulary.
_DECODE_SPACE = re.compile(r"(?<=[^\x00-\x7f\]])\s+|\s+(?=[^\x00-\x7f\[])|(?<=\])\s+|\s+(?=\[)")


class CourseNotice(UserWarning):
    """A notice for learners: the input was changed so that it can be used (truncated, [UNK], ...)."""


@dataclass(frozen=True)
class TokenRow:
    """One token of a text: where it is, what it is, its id and its line in vocab.txt."""

    position: int
    token: str
    id: int
    vocab_line: int
    special: bool
    unknown: bool


def vocab_line(token_id: int) -> int:
    """Line of vocab.txt that holds a token: ids count from 0, lines from 1."""
    return token_id + 1


def encode(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    """Token ids of a text, without adding special tokens (write `[CLS]` yourself if you want it)."""
    return tokenizer.encode(text, add_special_tokens=False)


def has_char_vocab(tokenizer: PreTrainedTokenizerBase) -> bool:
    """True for the BERT-style Chinese vocabulary, whose decoded text has spaces between characters."""
    return "[CLS]" in tokenizer.get_vocab() and "##的" in tokenizer.get_vocab()


def decode(tokenizer: PreTrainedTokenizerBase, ids: list[int], skip_special_tokens: bool = False) -> str:
    """Text of a list of ids, without the spaces a character-level tokenizer puts between characters."""
    text = tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)
    return _DECODE_SPACE.sub("", text) if has_char_vocab(tokenizer) else text


def token_table(tokenizer: PreTrainedTokenizerBase, text: str) -> list[TokenRow]:
    """One row per token of `text`: position, token, id, vocab.txt line, and whether it is special/[UNK]."""
    ids = encode(tokenizer, text)
    tokens = tokenizer.convert_ids_to_tokens(ids)
    special = set(tokenizer.all_special_ids)
    return [
        TokenRow(i, tok, tid, vocab_line(tid), tid in special, tid == tokenizer.unk_token_id)
        for i, (tok, tid) in enumerate(zip(tokens, ids))
    ]


def unknown_characters(tokenizer: PreTrainedTokenizerBase, text: str) -> list[str]:
    """Characters of `text` that the vocabulary does not have (they become [UNK])."""
    if tokenizer.unk_token_id is None:
        return []
    return [ch for ch in dict.fromkeys(text) if not ch.isspace() and encode(tokenizer, ch) == [tokenizer.unk_token_id]]


def warn_unknown(tokenizer: PreTrainedTokenizerBase, text: str) -> list[str]:
    """Warn (CourseNotice) when some characters of `text` will be read as [UNK]; return them."""
    unknown = unknown_characters(tokenizer, text)
    if unknown:
        shown = " ".join(repr(ch) for ch in unknown)
        warnings.warn(
            f"这些字符不在词表里，会变成 [UNK]：{shown}。可以换成词表里有的字符（例如把弯引号换成直引号）。"
            f" (Not in the vocabulary, read as [UNK]: {shown}.)",
            CourseNotice,
            stacklevel=2,
        )
    return unknown


def format_token_table(rows: list[TokenRow]) -> str:
    """A plain-text table of token rows, as printed by the notebooks and the command line."""
    lines = [f"{'位置':<4}{'token':<10}{'id':>7}{'vocab.txt 行号':>16}"]
    for row in rows:
        mark = "  ← [UNK]" if row.unknown else ("  ← 特殊 token" if row.special else "")
        lines.append(f"{row.position:<6}{row.token:<10}{row.id:>7}{row.vocab_line:>16}{mark}")
    return "\n".join(lines)


def readable_token(token: str) -> str:
    """Make byte-level BPE pieces readable: 'Ġ' (a leading space) becomes '␣', 'Ċ' (newline) becomes '↵'."""
    return token.replace("Ġ", "␣").replace("Ċ", "↵").replace("ĉ", "⇥")


def tokens_html(rows: list[TokenRow]) -> str:
    """Coloured token chips (token, id, vocab line) as HTML; special tokens and [UNK] stand out."""
    chips = []
    for row in rows:
        colour = "#f8d7da" if row.unknown else ("#d6e4ff" if row.special else ("#e8f5e9", "#fff3cd")[row.position % 2])
        chips.append(
            f'<span style="display:inline-block;margin:2px;padding:2px 6px;border-radius:6px;'
            f'background:{colour};font-family:monospace;text-align:center;line-height:1.3">'
            f"<b>{html.escape(readable_token(row.token))}</b><br>"
            f'<small>id {row.id}<br>行 {row.vocab_line}</small></span>'
        )
    return '<div style="line-height:2.2">' + "".join(chips) + "</div>"
