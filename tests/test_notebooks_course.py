"""Notebook-level checks for every teaching notebook in course/ (nbval re-runs them; this checks their shape).

Also: every stored verdict line (`…：True`) in course/ and solutions/ says True, except the allow-listed ones that
are meant to say False; no stored output went to stderr, ignored cells included; no code cell carries an
`# NBVAL_...` comment (markers are cell tags); and a d2l-style check: the greedy loop written out in the GPT2
experiment notebooks (05, 06), run as it stands in the notebook, gives the same ids as
`helpers.generation.generate(..., use_cache=False)`.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import nbformat
import pytest
import torch

from helpers.generation import generate
from helpers.tokens import decode, encode

ROOT = Path(__file__).resolve().parent.parent
COURSE = ROOT / "course"
NOTEBOOKS = sorted(COURSE.glob("*.ipynb"))
STORED = NOTEBOOKS + sorted((ROOT / "solutions").glob("*.ipynb"))  # notebooks stored with outputs
ALL_NOTEBOOKS = STORED + sorted((ROOT / "labs").glob("*.ipynb"))
IGNORE_TAG = "nbval-ignore-output"
IGNORE_MARK = "# NBVAL_IGNORE_OUTPUT"  # the old in-code marker, being replaced by IGNORE_TAG
LESSONS = [
    "00_setup", "01_text_generation", "02_tokenization", "03_transformer_and_llama", "04_softmax_and_decoding",
    "05_gpt2_experiment_base", "06_gpt2_experiment_chat", "07_transformer_families", "08_kv_cache",
]
LESSONS_IN_PROGRESS = ("09_", "10_")  # being written: at most one notebook each, any name
MIN_CHINESE_MARKDOWN = 5
HAN = re.compile(r"[\u4e00-\u9fff]")
ABSOLUTE_PATH = re.compile(r"/work/|/root/|/home/|/Users/|[A-Za-z]:\\Users\\")
# A verdict line: a label, a colon, then one or more True/False (e.g. "还原一致： True"), or a bare True/False
# (what a lab checker returns).
VERDICT = re.compile(r"^(?P<label>.*?)(?:[：:]\s*)?(?P<values>(?:\b(?:True|False)\s*)+)$")
# Verdict lines meant to say False, with the reason: (notebook, regex the label must fully match) -> why.
INTENDED_FALSE = {
    ("course/00_setup.ipynb", r"→ GPT2LMHeadModel，.*真实权重"):
        "a property, not a check: the GPT2 stand-ins are the course's own small models, not the real weights",
    ("course/02_tokenization.ipynb", r"中文 GPT2 还原一致"):
        "the uer vocabulary has no curly quotes: they become [UNK], so this round trip cannot be exact",
}
# Equality checks the notebooks print, as (start of the printed line, how many such lines): they must exist
# (test_stored_verdicts_say_true then requires them to say True).
EQUALITY_CHECKS = {
    "01_text_generation.ipynb": [(r"前 5 个相同：", 1)],
    "02_tokenization.ipynb": [(r"行数：.*和词表大小一致：", 1), (r"还原一致：", 1)],
    "04_softmax_and_decoding.ipynb": [(r"和模型自己输出的 logits 一致：", 1)],
    "05_gpt2_experiment_base.ipynb": [(r"\S+.* 与循环相同：", 3)],
    "06_gpt2_experiment_chat.ipynb": [(r"和上面的 chat 函数历史相同：", 1), (r"用不用 KV 缓存，选出的词元相同：", 1)],
    "08_kv_cache.ipynb": [(r".*用不用缓存的结果相同：", 2)],
}
SEED_PROMPT = "[CLS]今天天气真"


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def code_cells(notebook: nbformat.NotebookNode) -> list:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def output_text(output: dict) -> str:
    """All text an output shows: stream text, plain/HTML data, or an error's name and message."""
    if output.get("output_type") == "stream":
        return output.get("text", "")
    if output.get("output_type") == "error":
        return f"{output.get('ename')}: {output.get('evalue')}"
    data = output.get("data", {})
    return "\n".join(str(data[key]) for key in ("text/plain", "text/html", "text/markdown") if key in data)


def ignored(cell) -> bool:
    """nbval ignores this cell's output (the tag; the old comment is accepted until the move is finished)."""
    return IGNORE_TAG in cell.metadata.get("tags", []) or cell.source.lstrip().startswith(IGNORE_MARK)


def lessons_in(folder: Path) -> set[str]:
    """The notebooks of `folder`, by stem, with lessons still being written left out."""
    return {path.stem for path in folder.glob("*.ipynb") if not path.name.startswith(LESSONS_IN_PROGRESS)}


def test_course_and_solutions_have_exactly_the_lessons():
    assert lessons_in(COURSE) == set(LESSONS)
    assert lessons_in(ROOT / "solutions") == set(LESSONS) - {"00_setup"}
    for folder in ("course", "solutions", "labs"):
        for prefix in LESSONS_IN_PROGRESS:
            assert len(list((ROOT / folder).glob(prefix + "*.ipynb"))) <= 1, f"two {folder}/{prefix}* notebooks"


@pytest.fixture(params=NOTEBOOKS, ids=[path.name for path in NOTEBOOKS])
def notebook(request) -> nbformat.NotebookNode:
    return read(request.param)


def test_valid_nbformat(notebook):
    nbformat.validate(notebook)
    assert notebook.nbformat == 4


def test_kernel_metadata(notebook):
    kernelspec = notebook.metadata.get("kernelspec", {})
    assert kernelspec.get("name") == "llm-course"
    assert kernelspec.get("display_name") == "Python (LLM 课程)"


def test_first_cell_is_title_with_goals(notebook):
    first = notebook.cells[0]
    assert first.cell_type == "markdown"
    assert first.source.lstrip().startswith("# ")
    assert "学习目标" in first.source


def test_first_code_cell_reports_environment(notebook):
    first = code_cells(notebook)[0]
    assert ignored(first)  # versions and thread counts differ from machine to machine
    assert re.search(r"print\(\s*summary_line\(\)\s*\)", first.source)


def test_every_code_cell_executed_in_order(notebook):
    counts = [cell.execution_count for cell in code_cells(notebook)]
    assert counts == list(range(1, len(counts) + 1))


def test_no_error_outputs(notebook):
    for cell in code_cells(notebook):
        for output in cell.outputs:
            assert output.output_type != "error", f"{cell.source[:60]!r}: {output_text(output)}"
            assert "Traceback (most recent call last)" not in output_text(output)


@pytest.mark.parametrize("path", STORED, ids=relative)
def test_no_stderr_in_any_stored_output(path):
    """Warnings and progress bars go to stderr; no stored cell may show them, ignored cells included."""
    for cell in code_cells(read(path)):
        stderr = [output.text for output in cell.outputs if output.output_type == "stream" and output.name == "stderr"]
        assert not stderr, f"{cell.source[:60]!r} wrote to stderr: {stderr[0][:200]!r}"


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=relative)
def test_nbval_markers_are_cell_tags_not_comments(path):
    for cell in code_cells(read(path)):
        assert "NBVAL_" not in cell.source, (
            f"{cell.source[:60]!r}: use the cell tag {IGNORE_TAG!r} (or nbval-skip) instead of a # NBVAL_ comment")


# What would differ from run to run: memory addresses and wall-clock timings. nbval compares every cell that is
# not tagged nbval-ignore-output, so such values may only appear in ignored cells (no sanitizing regexes).
VOLATILE = re.compile(r"\b0x[0-9a-f]{6,}\b|\d(?:\.\d+)?\s?(?:ms|秒|毫秒)|\d\.\d+\s?s\b|tokens?/s\b|词元/秒")


@pytest.mark.parametrize("path", STORED, ids=relative)
def test_compared_outputs_hold_no_addresses_or_timings(path):
    for cell in code_cells(read(path)):
        if ignored(cell) or "nbval-skip" in cell.metadata.get("tags", []):
            continue
        for output in cell.outputs:
            match = VOLATILE.search(output_text(output))
            assert match is None, f"{cell.source[:60]!r} shows {match.group(0)!r}: tag the cell {IGNORE_TAG!r}"


def verdicts(path: Path) -> list[tuple[str, str]]:
    """(label, values) of every verdict line stored in the notebook's outputs, ignored cells included."""
    found = []
    for cell in code_cells(read(path)):
        for output in cell.outputs:
            for line in output_text(output).splitlines():
                if match := VERDICT.match(line.strip()):
                    found.append((match["label"].strip(), match["values"].strip()))
    return found


@pytest.mark.parametrize("path", STORED, ids=relative)
def test_stored_verdicts_say_true(path):
    """nbval compares with what is stored, so a stored False would pass it: every verdict must say True."""
    name = relative(path)
    for label, values in verdicts(path):
        if intended_false(name, label):
            assert values == "False", f"{name}: {label!r} is allow-listed as False but says {values}"
        else:
            assert set(values.split()) == {"True"}, f"{name}: {label or '(a bare verdict)'!r} says {values}"


def intended_false(name: str, label: str) -> bool:
    return any(name == notebook and re.fullmatch(pattern, label) for notebook, pattern in INTENDED_FALSE)


def test_allow_listed_false_verdicts_still_exist():
    for name, pattern in INTENDED_FALSE:
        found = [label for label, values in verdicts(ROOT / name) if re.fullmatch(pattern, label)]
        assert found, f"{name} no longer prints a line matching {pattern!r}: drop it from INTENDED_FALSE"


def test_no_absolute_paths_in_outputs(notebook):
    for cell in code_cells(notebook):
        for output in cell.outputs:
            match = ABSOLUTE_PATH.search(output_text(output))
            assert match is None, f"{cell.source[:60]!r} shows a local path near {match.group(0)!r}"


def test_enough_chinese_markdown(notebook):
    chinese = [cell for cell in notebook.cells if cell.cell_type == "markdown" and HAN.search(cell.source)]
    assert len(chinese) >= MIN_CHINESE_MARKDOWN


@pytest.mark.parametrize("name", sorted(EQUALITY_CHECKS))
def test_stored_equality_checks_say_true(name):
    lines = [line for cell in code_cells(read(COURSE / name)) for output in cell.outputs
             for line in output_text(output).splitlines()]
    for start, count in EQUALITY_CHECKS[name]:
        found = [match.group(1) for line in lines if (match := re.match(start + r"\s*(True|False)\s*$", line))]
        assert found == ["True"] * count, f"{name}: lines starting {start!r} say {found}"


def loop_cell(name: str) -> str:
    """The source of the one code cell of course/`name` that runs the seed's `for i in range(max_len)` loop."""
    cells = [cell.source for cell in code_cells(read(COURSE / name)) if "for i in range(max_len)" in cell.source]
    assert len(cells) == 1, f"{name} should have exactly one cell with the seed loop"
    return cells[0]


def run_cell(source: str, namespace: dict) -> str:
    """Execute notebook code in `namespace`; return what it printed."""
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        exec(compile(source, "<notebook cell>", "exec"), namespace)
    return printed.getvalue()


@pytest.mark.parametrize("fixture_name", ["tiny_gpt2", "gpt2_base"])
def test_seed_loop_in_05_matches_generate(fixture_name, request):
    model, tokenizer = request.getfixturevalue(fixture_name)
    ids = encode(tokenizer, SEED_PROMPT)
    assert ids == [101, 791, 1921, 1921, 3698, 4696]
    namespace = {"torch": torch, "model": model, "tokenizer": tokenizer, "device": model.device,
                 "ids": ids, "decode": decode}
    printed = run_cell(loop_cell("05_gpt2_experiment_base.ipynb"), namespace)

    assert namespace["max_len"] == 20
    expected = generate(model, tokenizer, SEED_PROMPT, max_new_tokens=20, use_cache=False)
    assert namespace["response"] == expected.new_ids
    assert namespace["input_ids"][0].tolist() == expected.ids
    assert len(re.findall(r"^i=\s*\d+", printed, flags=re.MULTILINE)) == 20
    # The printed probability of the first step is the one generate records.
    assert f"{expected.steps[0].prob:.3f}" in printed.splitlines()[0]


def test_seed_loop_in_06_matches_generate(gpt2_chat):
    model, tokenizer = gpt2_chat
    namespace = {"torch": torch, "chat_model": model, "chat_tokenizer": tokenizer, "device": model.device}
    printed = run_cell(loop_cell("06_gpt2_experiment_chat.ipynb"), namespace)

    assert namespace["prompt"] == SEED_PROMPT
    expected = generate(model, tokenizer, SEED_PROMPT, max_new_tokens=namespace["max_len"], use_cache=False)
    assert namespace["response"] == expected.new_ids
    assert len(printed.splitlines()) == namespace["max_len"]
