"""Learner-facing text follows docs/TERMINOLOGY.md: no rendering the glossary rules out.

Checked: the Markdown cells, code-cell strings and code-cell comments of every notebook in course/, labs/ and
solutions/, and the string literals of helpers/**/*.py (checker messages, CLI messages, figure labels).
Inline code (in Markdown and in strings) and fenced code blocks are not prose and are skipped. A ruled-out string that is only part
of an allowed rendering (笔记本 inside 笔记本电脑, 分词 inside 分词器) does not count. A deliberate quotation of a
ruled-out word (e.g. correcting an article's wording) is allowed by `<!-- terminology: allow WORD -->` in that
Markdown cell, or `# terminology: allow WORD` on that line of Python.
"""

from __future__ import annotations

import io
import re
import tokenize
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
GLOSSARY = ROOT / "docs" / "TERMINOLOGY.md"
NOTEBOOKS = sorted(path for folder in ("course", "labs", "solutions") for path in (ROOT / folder).glob("*.ipynb"))
HELPER_FILES = sorted(path for path in (ROOT / "helpers").rglob("*.py") if "standins" not in path.parts)

ALLOW = re.compile(r"terminology:\s*allow\s+(\S+)")
FENCED = re.compile(r"```.*?```", re.DOTALL)
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1", re.DOTALL)
BACKTICKED = re.compile(r"`([^`]+)`")
PARENTHESES = re.compile(r"[（(].*?[）)]")


@dataclass(frozen=True)
class Rule:
    """One ruled-out rendering and the rendering the glossary wants instead."""

    banned: str  # the literal text, or a regex when is_regex
    is_regex: bool
    allowed: str  # what to write instead (the glossary's 中文 column)

    def find(self, text: str) -> list[str]:
        if self.is_regex:
            return [match.group(0) for match in re.finditer(self.banned, text)]
        return [self.banned] * text.count(self.banned)


@dataclass(frozen=True)
class Glossary:
    rules: list[Rule]
    allowed: list[str]  # every allowed rendering, longest first (masked before searching)


def parse_glossary(text: str) -> Glossary:
    """Read the tables of TERMINOLOGY.md: column 1 the allowed rendering(s), column 4 the ruled-out ones."""
    rules, allowed = [], set()
    for line in text.splitlines():
        if not line.startswith("|") or line.startswith("|---"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 4 or cells[0] == "中文":
            continue
        chinese, _english, _note, ruled_out = cells
        renderings = [part.strip() for part in chinese.split(" / ") if part.strip()]
        for rendering in renderings:
            allowed.add(rendering)
            allowed.add(PARENTHESES.sub("", rendering).strip())
        for item in BACKTICKED.findall(ruled_out):
            is_regex = len(item) > 2 and item.startswith("/") and item.endswith("/")
            rules.append(Rule(item[1:-1] if is_regex else item, is_regex, chinese))
    return Glossary(rules, sorted((a for a in allowed if a), key=len, reverse=True))


GLOSSARY_DATA = parse_glossary(GLOSSARY.read_text(encoding="utf-8"))


def violations(text: str, glossary: Glossary = GLOSSARY_DATA) -> list[tuple[str, Rule]]:
    """(found text, rule) for each ruled-out rendering in `text` that is not part of an allowed rendering."""
    masked = text
    for word in sorted(set(ALLOW.findall(text)), key=len, reverse=True):
        masked = masked.replace(word, "\u25a1" * len(word))
    for rendering in glossary.allowed:
        if any(not rule.is_regex and rule.banned in rendering for rule in glossary.rules):
            masked = masked.replace(rendering, "\u25a1" * len(rendering))
    found = []
    for rule in glossary.rules:
        found += [(hit, rule) for hit in rule.find(masked)]
    return found


def markdown_prose(source: str) -> str:
    return INLINE_CODE.sub(" ", FENCED.sub(" ", source))


def python_texts(source: str) -> list[tuple[int, str]]:
    """(line number, text) of every string literal and comment; IPython `!`/`%` lines are skipped."""
    lines = [("\n" if line.lstrip().startswith(("!", "%")) else line) for line in source.splitlines(keepends=True)]
    texts = []
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO("".join(lines)).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return [(number, line) for number, line in enumerate(lines, start=1)]
    line_text = "".join(lines).splitlines()
    kinds = {tokenize.STRING, tokenize.COMMENT}
    kinds |= {getattr(tokenize, name) for name in ("FSTRING_MIDDLE",) if hasattr(tokenize, name)}
    for token in tokens:
        if token.type in kinds:
            line = line_text[token.start[0] - 1] if token.start[0] - 1 < len(line_text) else ""
            allow = " ".join(ALLOW.findall(line))
            texts.append((token.start[0], token.string + (f" terminology: allow {allow}" if allow else "")))
    return texts


def format_hits(where: str, hits: list[tuple[str, Rule]]) -> list[str]:
    return [f"{where}: uses {hit!r} (ruled out: {rule.banned!r}); write {rule.allowed!r} (see docs/TERMINOLOGY.md)"
            for hit, rule in hits]


def notebook_problems(path: Path) -> list[str]:
    problems = []
    notebook = nbformat.read(path, as_version=4)
    for index, cell in enumerate(notebook.cells):
        where = f"{path.relative_to(ROOT)} cell {index} ({cell.cell_type})"
        if cell.cell_type == "markdown":
            problems += format_hits(where, violations(markdown_prose(cell.source)))
        elif cell.cell_type == "code":
            for line, text in python_texts(cell.source):
                problems += format_hits(f"{where} line {line}", violations(markdown_prose(text)))
    return problems


def helper_problems(path: Path) -> list[str]:
    problems = []
    for line, text in python_texts(path.read_text(encoding="utf-8")):
        if text.lstrip().startswith("#"):
            continue  # comments in helpers are for maintainers
        problems += format_hits(f"{path.relative_to(ROOT)} line {line}", violations(markdown_prose(text)))
    return problems


# --- the glossary itself ---------------------------------------------------------------------------------------

def test_glossary_rules_out_the_renderings_the_review_named():
    banned = {rule.banned: rule.allowed for rule in GLOSSARY_DATA.rules}
    assert banned["逻辑值"] == "logits"
    assert banned["标准化层"] == "归一化 / 归一化层"
    assert banned["离线替身"] == "替身模型"
    assert banned["课程自带的离线模型"] == "替身模型"
    assert banned["笔记本"] == "notebook"
    assert banned["分词"] == "词元化"
    assert banned["抽样"] == "采样"
    assert len(GLOSSARY_DATA.rules) >= 30
    for rule in GLOSSARY_DATA.rules:
        if rule.is_regex:
            re.compile(rule.banned)


def test_glossary_has_one_row_per_concept():
    rows = [line.split("|")[1].strip() for line in GLOSSARY.read_text(encoding="utf-8").splitlines()
            if line.startswith("| ") and not line.startswith("| 中文")]
    assert len(rows) >= 60
    assert len(rows) == len(set(rows)), "a Chinese rendering appears in two rows"
    for needed in ["词元", "编号", "词表", "分词器", "logits", "替身模型", "离线副本", "notebook", "笔记本电脑",
                   "归一化 / 归一化层", "贪心解码", "采样", "温度", "提示词", "KV 缓存", "困惑度", "教师强制"]:
        assert needed in rows, needed


@pytest.mark.parametrize("text, expected", [
    ("模型为每个词元打一个分数，叫逻辑值 (logits)。", ["逻辑值"]),
    ("绿色的标准化层", ["标准化"]),  # both 标准化层 and 标准化 match
    ("只用课程自带的离线模型", ["课程自带的离线模型"]),
    ("每个笔记本回答一个问题", ["笔记本"]),
    ("如何在笔记本电脑上运行大模型？", []),
    ("把文字交给分词器", []),
    ("SmolLM2 的分词方法完全不同", ["分词"]),
    ("jieba 做的是中文分词", []),
    ("按概率抽样三次", ["抽样"]),
    ("每个 token 的概率", ["个 token", "token 的"]),
    ("词元 (token) 与编号 (id)", []),
    ("一串整数 id，", ["数 id"]),
    ("token_ids 和 stop_tokens", []),
    ("ids 的形状是 [1, T]", []),  # plural: the variable's name
    ("把 `id` 换成编号", []),
    ("离线副本是真实权重", []),
    ("在代码单元格里运行", []),
    ("在代码单元里运行", ["代码单元"]),
])
def test_violations_examples(text, expected):
    found = [hit for hit, _rule in violations(text)]
    if expected == ["标准化"]:
        assert "标准化层" in found and "标准化" in found
    else:
        assert found == expected


def test_markdown_code_and_allow_comment_are_not_prose():
    assert violations(markdown_prose("运行 `笔记本` 和\n```\n逻辑值\n```\n")) == []
    assert violations("文章把它叫作“标准化层” <!-- terminology: allow 标准化层 -->") == []
    assert [hit for hit, _ in violations("标准化层和逻辑值 <!-- terminology: allow 标准化层 -->")] == ["逻辑值"]


def test_python_texts_reads_strings_and_comments_and_skips_shell_lines():
    source = '!python -m helpers 逻辑值\nx = "逻辑值"  # 笔记本\nprint(f"{x} 抽样")\n'
    texts = python_texts(source)
    joined = " ".join(text for _line, text in texts)
    assert "python -m helpers" not in joined
    assert {line for line, _text in texts} >= {2, 3}
    assert len([hit for _line, text in texts for hit, _ in violations(text)]) == 3


# --- the course -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", NOTEBOOKS, ids=[str(path.relative_to(ROOT)) for path in NOTEBOOKS])
def test_notebook_text_follows_glossary(path):
    problems = notebook_problems(path)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", HELPER_FILES, ids=[str(path.relative_to(ROOT)) for path in HELPER_FILES])
def test_helper_messages_follow_glossary(path):
    problems = helper_problems(path)
    assert not problems, "\n".join(problems)
