"""Where did a stand-in learn a sentence? Look it up in the stand-in's training data.

The course's stand-ins are tiny (about 6M parameters), so most of their fluent sentences are copied from
their training text. Each stand-in folder ships that text (`training_data.txt.xz`, one training sample a
line, written by `training/ship_training_data.py`). `find_in_training_data` looks a generated sentence up:

1. exact: the whole sentence occurs inside a training line;
2. otherwise: the longest piece of the sentence that occurs in some training line.

    >>> print(find_in_training_data("你好，很高兴认识你", "gpt2-chinese-chat"))   # doctest: +SKIP

Spaces are ignored and letters compared in lower case, because the uer tokenizer lower-cases text and its
decoded output has spaces between characters. The lookup only knows the stand-ins' data: for a real
model (loaded from the hub) it says nothing about where that model's text comes from.
"""

from __future__ import annotations

import functools
import lzma
import re
from dataclasses import dataclass

from .registry import get_spec

DATA_FILE = "training_data.txt.xz"
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Provenance:
    """Result of a lookup: the shared span, whether it is the whole query, and one training line holding it."""

    query: str
    span: str  # the longest piece of the query found in the training data ("" if none)
    exact: bool  # True when the span is the whole query
    count: int  # how many training lines contain the span
    line_number: int  # 1-based line number in training_data.txt.xz of the first line containing it (0 if none)
    line: str  # that training line, as it was trained on
    model: str

    def excerpt(self, context: int = 20) -> str:
        """The training line, shortened to `context` characters around the span when it is long."""
        if len(self.line) <= 4 * context:
            return self.line
        positions = [i for i, char in enumerate(self.line) if not char.isspace() for _ in char.lower()]
        start = normalise(self.line).find(self.span)
        first, last = positions[start], positions[start + len(self.span) - 1] + 1
        begin, end = max(0, first - context), min(len(self.line), last + context)
        return ("…" if begin else "") + self.line[begin:end] + ("…" if end < len(self.line) else "")

    def __str__(self) -> str:
        if not self.span:
            return f"「{self.query}」里没有一个字出现在 {self.model} 的训练数据里。"
        where = f"第 {self.line_number} 行：{self.excerpt()}"
        if self.exact:
            return (f"原样出现在 {self.model} 的训练数据里（{self.count} 行含有它），"
                    f"例如{where}")
        return (f"整句不在 {self.model} 的训练数据里；最长的共同片段是「{self.span}」"
                f"（{len(self.span)} 个字符，{self.count} 行含有它），例如{where}")


def normalise(text: str) -> str:
    """Drop whitespace and lower-case letters, the way the uer tokenizer sees text."""
    return _SPACES.sub("", text).lower()


@functools.lru_cache(maxsize=4)
def training_lines(model: str) -> tuple[str, ...]:
    """The training samples of a stand-in, one per line, read from its folder."""
    spec = get_spec(model)
    folder = spec.standin_path
    if folder is None:
        raise ValueError(
            f"{model} 没有替身模型，也就没有课程保存的训练数据；请用 gpt2-chinese 或 gpt2-chinese-chat。"
            f" ({model} has no stand-in, so there is no training data to search.)")
    path = folder / DATA_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"找不到 {path}：请重新安装课程（git pull 或 make setup），或用 "
            f"python -m training.ship_training_data 重新生成。 ({path} is missing.)")
    with lzma.open(path, "rt", encoding="utf-8") as file:
        return tuple(file.read().splitlines())


@functools.lru_cache(maxsize=4)
def _searchable(model: str) -> str:
    """All training lines normalised and joined with newlines, for fast substring search."""
    return "\n".join(normalise(line) for line in training_lines(model))


def longest_shared_span(query: str, text: str) -> str:
    """The longest substring of `query` that occurs in `text` (the first one if several are equally long).

    Binary search on the length: if some piece of length n occurs in text, some piece of length n - 1 does too.
    """
    def found(length: int) -> str:
        return next((query[i:i + length] for i in range(len(query) - length + 1)
                     if query[i:i + length] in text), "")

    best, low, high = "", 1, len(query)
    while low <= high:
        middle = (low + high) // 2
        piece = found(middle)
        if piece:
            best, low = piece, middle + 1
        else:
            high = middle - 1
    return best


def find_in_training_data(text: str, model: str = "gpt2-chinese-chat") -> Provenance:
    """Look `text` up in the training data of stand-in `model` ("gpt2-chinese" or "gpt2-chinese-chat")."""
    if "\n" in text.strip():
        raise ValueError("一次只查一行：请去掉换行。 (Look up one line at a time.)")
    query = normalise(text)
    if not query:
        raise ValueError("要查的文本是空的：请传入模型生成的一句话。 (The text to look up is empty.)")
    data = _searchable(model)
    span = longest_shared_span(query, data)
    if not span:
        return Provenance(text, "", False, 0, 0, "", model)
    start = data.find(span)
    line_index = data.count("\n", 0, start)
    count = sum(span in line for line in data.split("\n"))
    return Provenance(text, span, span == query, count, line_index + 1, training_lines(model)[line_index], model)
