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
    """True for a BERT-style vocabulary (vocab.txt, WordPiece), whose decoded text has spaces between characters.

    Any such vocabulary counts, whatever its size and ids: the uer/BERT one (21128 lines) and trimmed ones such as
    the 13317-line vocabulary of the real chat model. Asks the tokenizer's decoder; a tokenizer without one
    (a slow tokenizer) counts when it knows `[CLS]` and is not byte-level.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and backend.decoder is not None:
        return type(backend.decoder).__name__ == "WordPiece"
    cls_id = tokenizer.convert_tokens_to_ids("[CLS]")
    return cls_id is not None and cls_id != tokenizer.unk_token_id and not is_byte_level(tokenizer)


def is_byte_level(tokenizer: PreTrainedTokenizerBase) -> bool:
    """True for byte-level BPE tokenizers (SmolLM2, GPT-2 English), False for the Chinese character vocabulary."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    return backend is not None and type(backend.decoder).__name__ == "ByteLevel"


def decode(tokenizer: PreTrainedTokenizerBase, ids: list[int], skip_special_tokens: bool = False) -> str:
    """Text of a list of ids, without the spaces a character-level tokenizer puts between characters."""
    text = tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)
    return _DECODE_SPACE.sub("", text) if has_char_vocab(tokenizer) else text


def token_rows(tokenizer: PreTrainedTokenizerBase, ids: list[int]) -> list[TokenRow]:
    """One row per id: position, token, id, vocab.txt line, and whether it is special/[UNK]."""
    tokens = tokenizer.convert_ids_to_tokens(ids)
    special = set(tokenizer.all_special_ids)
    return [
        TokenRow(i, tok, tid, vocab_line(tid), tid in special, tid == tokenizer.unk_token_id)
        for i, (tok, tid) in enumerate(zip(tokens, ids))
    ]


def token_table(tokenizer: PreTrainedTokenizerBase, text: str) -> list[TokenRow]:
    """The token rows of a text (encoded without added special tokens)."""
    return token_rows(tokenizer, encode(tokenizer, text))


def unknown_characters(tokenizer: PreTrainedTokenizerBase, text: str) -> list[str]:
    """Characters of `text` that the vocabulary does not have (they become [UNK]).

    Special tokens written into the text (`[CLS]`, `[SEP]`) are whole tokens, not characters: they are left out,
    so that a vocabulary without the letters C, L, S never reports them.
    """
    if tokenizer.unk_token_id is None:
        return []
    for special in sorted(tokenizer.all_special_tokens, key=len, reverse=True):
        text = text.replace(special, " ")
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
        mark = "  ← [UNK]" if row.unknown else ("  ← 特殊词元" if row.special else "")
        lines.append(f"{row.position:<6}{row.token:<10}{row.id:>7}{row.vocab_line:>16}{mark}")
    return "\n".join(lines)


def _byte_alphabet() -> dict[str, int]:
    """GPT-2's byte-level alphabet: every byte 0-255 is written as one printable character.

    Printable bytes stand for themselves; the others (space, newline, 0x80-0xa0, ...) are shifted to
    characters from U+0100 on, which is why a leading space shows up as 'Ġ' and a newline as 'Ċ'.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    alphabet, shifted = {}, 0
    for byte in range(256):
        if byte in printable:
            alphabet[chr(byte)] = byte
        else:
            alphabet[chr(256 + shifted)] = byte
            shifted += 1
    return alphabet


BYTE_OF_CHAR = _byte_alphabet()
WHITESPACE_SIGNS = {" ": "␣", "\n": "↵", "\t": "⇥"}


def looks_byte_level(tokens: list[str]) -> bool:
    """True when tokens look like byte-level BPE pieces (SmolLM2, GPT-2): byte-alphabet characters only, some non-ASCII.

    A Chinese character-level vocabulary never passes: its tokens are Chinese characters, outside the alphabet.
    """
    tokens = [token for token in tokens if token]
    return (
        bool(tokens)
        and all(ch in BYTE_OF_CHAR for token in tokens for ch in token)
        and any(not token.isascii() for token in tokens)
    )


def show_bytes(data: bytes) -> str:
    """Decode the bytes that form whole UTF-8 characters (a space as ␣, a newline as ↵).

    Bytes that are only part of a character are written as hex: b'\\xe4\\xbd' -> '⟨e4 bd⟩'.
    """
    parts: list[str] = []
    pending: list[int] = []
    i = 0
    while i < len(data):
        char, size = None, 1
        for size in range(1, 5):
            try:
                char = data[i : i + size].decode("utf-8")
                break
            except UnicodeDecodeError:
                continue
        if char is not None and (char.isprintable() or char in WHITESPACE_SIGNS):
            if pending:
                parts.append("⟨" + " ".join(f"{b:02x}" for b in pending) + "⟩")
                pending = []
            parts.append(WHITESPACE_SIGNS.get(char, char))
            i += size
        else:
            pending.append(data[i])
            i += 1
    if pending:
        parts.append("⟨" + " ".join(f"{b:02x}" for b in pending) + "⟩")
    return "".join(parts)


def readable_token(token: str, byte_level: bool | None = None) -> str:
    """A token as a learner should see it.

    Byte-level BPE pieces are turned back into text: 'Ġ' (a leading space) becomes '␣', 'Ċ' (newline) '↵',
    and a piece of a Chinese character that is not a whole character is shown as its bytes, e.g. '⟨e4 bd⟩'.
    `byte_level=None` guesses from the token itself; pass True/False when you know the tokenizer.
    """
    if byte_level is None:
        byte_level = looks_byte_level([token])
    if byte_level and all(ch in BYTE_OF_CHAR for ch in token):
        return show_bytes(bytes(BYTE_OF_CHAR[ch] for ch in token))
    return "".join(WHITESPACE_SIGNS.get(ch, ch) for ch in token)


CHIP_COLOURS = {"unknown": "#f8d7da", "special": "#d6e4ff", "bytes": "#ede7f6", "even": "#e8f5e9", "odd": "#fff3cd"}
CHIP_LEGEND = {
    "unknown": "[UNK]：词表里没有的字符",
    "special": "特殊词元 (special token)",
    "bytes": "字节片段：一个汉字的 UTF-8 字节被拆开了",
}


def tokens_html(rows: list[TokenRow], byte_level: bool | None = None) -> str:
    """Coloured token chips (token, id, vocab.txt line) as HTML; special tokens, [UNK] and byte pieces stand out.

    For a byte-level tokenizer (SmolLM2) the chips show the readable piece and the id (there is no vocab.txt).
    """
    if byte_level is None:
        byte_level = looks_byte_level([row.token for row in rows if not row.special])
    chips, kinds, carry = [], set(), b""
    for row in rows:
        label = readable_token(row.token, byte_level and not row.special)
        kind = "unknown" if row.unknown else "special" if row.special else "bytes" if "⟨" in label else None
        kinds.add(kind)
        colour = CHIP_COLOURS[kind or ("even", "odd")[row.position % 2]]
        where = f"id {row.id}" if byte_level else f"id {row.id}<br>行 {row.vocab_line}"
        if kind == "bytes":  # consecutive byte pieces: say which character they make together
            carry += bytes(BYTE_OF_CHAR[ch] for ch in row.token)
            whole = show_bytes(carry)
            if "⟨" not in whole:
                where += f"<br>拼成「{html.escape(whole)}」"
                carry = b""
        else:
            carry = b""
        chips.append(
            f'<span title="{html.escape(repr(row.token))}" style="display:inline-block;margin:2px;padding:2px 6px;'
            f'border-radius:6px;background:{colour};font-family:monospace;text-align:center;line-height:1.3">'
            f"<b>{html.escape(label)}</b><br><small>{where}</small></span>"
        )
    legend = "；".join(
        f'<span style="background:{CHIP_COLOURS[k]};padding:0 4px">{text}</span>'
        for k, text in CHIP_LEGEND.items() if k in kinds
    )
    legend_html = f'<div style="font-size:small">{legend}</div>' if legend else ""
    return '<div class="course-token-chips" style="line-height:2.2">' + "".join(chips) + "</div>" + legend_html
