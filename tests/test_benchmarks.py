"""The benchmark scripts: schema, positive numbers, the ids check. Tiny model, tiny lengths, no timed asserts."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import generation as bench  # noqa: E402
from benchmarks import notebooks as nb_bench  # noqa: E402

PROMPT = "[CLS]今天天气真"
RUN_KEYS = {"model", "new_tokens", "method", "tokens_per_s", "peak_rss_mb"}


def test_time_methods_returns_the_schema_with_positive_numbers(tiny_gpt2):
    model, tok = tiny_gpt2
    runs = bench.time_methods(model, tok, "tiny", PROMPT, 6, repeats=2)  # raises unless all three give the same ids
    assert [r.method for r in runs] == ["naive", "cached", "generate"]
    payload = json.loads(bench.to_json(runs, repeats=2))
    assert len(payload["runs"]) == 3
    for run in payload["runs"]:
        assert set(run) == RUN_KEYS
        assert run["model"] == "tiny" and run["new_tokens"] == 6
        assert run["tokens_per_s"] > 0
        assert run["peak_rss_mb"] > 10  # the process holds torch and a model: tens of MiB at least


def test_a_method_that_disagrees_is_caught(tiny_gpt2):
    model, tok = tiny_gpt2

    def off_by_one(model, tok, prompt, new_tokens):
        ids = bench.run_cached(model, tok, prompt, new_tokens)
        return ids[:-1] + [(ids[-1] + 1) % len(tok)]

    methods = {"cached": bench.run_cached, "broken": off_by_one}
    with pytest.raises(bench.IdsMismatch, match="broken"):
        bench.time_methods(model, tok, "tiny", PROMPT, 4, repeats=1, methods=methods)


def test_a_method_that_stops_early_is_caught(tiny_gpt2):
    model, tok = tiny_gpt2
    short = {"short": lambda model, tok, prompt, n: bench.run_cached(model, tok, prompt, n)[:-1]}
    with pytest.raises(bench.IdsMismatch, match="3"):
        bench.time_methods(model, tok, "tiny", PROMPT, 4, repeats=1, methods=short)


def test_check_same_ids_names_the_first_difference():
    bench.check_same_ids("m", 3, {"a": [1, 2, 3], "b": [1, 2, 3]})
    with pytest.raises(bench.IdsMismatch, match="第 2 个"):
        bench.check_same_ids("m", 3, {"a": [1, 2, 3], "b": [1, 2, 4]})


def test_lengths_beyond_the_context_do_not_fit(tiny_gpt2):
    model, tok = tiny_gpt2  # n_positions = 64, the prompt has 6 tokens
    assert bench.fits(model, tok, PROMPT, 58)
    assert not bench.fits(model, tok, PROMPT, 59)


def test_peak_rss_is_reset_and_grows_with_an_allocation():
    if not bench.reset_peak_rss():
        pytest.skip("resetting the peak RSS needs Linux /proc/self/clear_refs")
    before = bench.peak_rss_mb()
    block = bytearray(200 * 1024 * 1024)
    block[::4096] = b"x" * len(block[::4096])  # touch every page so it is resident
    assert bench.peak_rss_mb() >= before + 150
    del block
    bench.reset_peak_rss()
    assert bench.peak_rss_mb() < before + 150


def test_table_shows_the_ratios():
    runs = [bench.Run("m", 10, "naive", 10.0, 100.0), bench.Run("m", 10, "cached", 40.0, 100.0),
            bench.Run("m", 10, "generate", 50.0, 100.0)]
    assert bench.ratio(runs, "m", 10, "cached", "generate") == pytest.approx(0.8)
    table = bench.format_table(runs)
    assert "0.80" in table and "4.00" in table


def test_notebook_benchmark_runs_a_copy_and_leaves_the_notebook_unchanged(tmp_path):
    (tmp_path / "data.txt").write_text("42")
    (tmp_path / "course").mkdir()
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("print(open('../data.txt').read())\nopen('made_here.txt', 'w').write('x')"),
    ])
    path = tmp_path / "course" / "01_x.ipynb"
    nbformat.write(notebook, path)
    original = path.read_text()
    result = nb_bench.time_notebook(path, root=tmp_path)
    assert result.notebook == "course/01_x.ipynb"
    assert result.seconds > 0
    assert result.stderr == ()
    if Path("/proc/self/status").exists():  # the kernel's peak memory: a Python process with IPython loaded
        assert 20 < result.peak_rss_mb < 2000
    assert path.read_text() == original  # no outputs written back
    assert not (tmp_path / "course" / "made_here.txt").exists()  # the run happened in the scratch copy


def test_scratch_copy_links_the_rest_of_the_repository(tmp_path):
    root = tmp_path / "repo"
    (root / "course").mkdir(parents=True)
    (root / "helpers").mkdir()
    (root / "course" / "other.txt").write_text("o")
    nbformat.write(nbformat.v4.new_notebook(), root / "course" / "02_y.ipynb")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    copy = nb_bench.scratch_copy(root / "course" / "02_y.ipynb", scratch, root)
    assert copy == scratch / "course" / "02_y.ipynb" and not copy.is_symlink()
    assert (scratch / "helpers").resolve() == (root / "helpers").resolve()
    assert (scratch / "course" / "other.txt").read_text() == "o"
    with pytest.raises(ValueError):
        nb_bench.scratch_copy(tmp_path / "scratch" / "course" / "02_y.ipynb", tmp_path, root)


def test_every_notebook_has_a_run_time_budget():
    for path in nb_bench.all_notebooks():
        name = path.relative_to(ROOT).as_posix()
        budget = nb_bench.budget_for(name)
        assert budget is not None and 0 < budget <= 1500, f"{name}: budget {budget} (BUDGETS in benchmarks/notebooks.py)"


def test_budgets_match_by_the_longest_prefix(monkeypatch):
    monkeypatch.setattr(nb_bench, "BUDGETS", {"course/0": 10, "course/09_": 240, "solutions/": 5})
    assert nb_bench.budget_for("course/09_training.ipynb") == 240
    assert nb_bench.budget_for("course/01_text_generation.ipynb") == 10
    assert nb_bench.budget_for("labs/01_text_generation.ipynb") is None


def test_a_notebook_that_writes_to_stderr_is_reported(tmp_path):
    (tmp_path / "course").mkdir()
    cells = [nbformat.v4.new_code_cell("print('fine')"),
             nbformat.v4.new_code_cell("import warnings\nwarnings.warn('old API', FutureWarning)")]
    cells[1].metadata["tags"] = ["nbval-ignore-output"]  # ignored by nbval, still reported
    nbformat.write(nbformat.v4.new_notebook(cells=cells), tmp_path / "course" / "02_w.ipynb")
    result = nb_bench.time_notebook(tmp_path / "course" / "02_w.ipynb", root=tmp_path)
    assert len(result.stderr) == 1 and result.stderr[0].startswith("cell 2: ") and "FutureWarning" in result.stderr[0]
