"""Each notebook in course/ and solutions/ runs, in a fresh kernel, within its budget and without stderr output.

The measurement is `benchmarks/notebooks.py`'s (a scratch copy, so nothing is written back); the budgets are its
BUDGETS, the one place for them, scaled by how long its calibration notebook takes on this machine now compared
with when the budgets were set. Re-executing every notebook takes many minutes, and timings need an otherwise idle
machine: markers `slow` and `budget`, run by `make test-budgets` before a release (not by `make test`, not by CI).
NOTEBOOK_BUDGET_SCALE=2 doubles every budget on top of that.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import notebooks as nb_bench  # noqa: E402

NOTEBOOKS = nb_bench.all_notebooks()


@pytest.fixture(scope="module")
def scale() -> float:
    """How much slower (> 1) or faster (< 1) this machine is now than when BUDGETS were set (0.25 to 8)."""
    speed = nb_bench.calibrate() / nb_bench.CALIBRATION_SECONDS
    return min(max(speed, 0.25), 8.0) * float(os.environ.get("NOTEBOOK_BUDGET_SCALE") or 1)


@pytest.mark.slow
@pytest.mark.budget
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.relative_to(ROOT).as_posix())
def test_notebook_runs_within_its_budget_without_stderr(path, scale):
    name = path.relative_to(ROOT).as_posix()
    budget = nb_bench.budget_for(name)
    assert budget is not None, f"{name} has no budget: add its prefix to BUDGETS in benchmarks/notebooks.py"
    budget *= scale
    result = nb_bench.time_notebook(path, timeout=int(budget) + 60)  # no single cell may take longer
    assert result.stderr == (), f"{name} wrote to stderr when re-executed: {result.stderr}"
    assert result.seconds <= budget, (
        f"{name} took {result.seconds:.0f} s, its budget here is {budget:.0f} s (BUDGETS in benchmarks/notebooks.py "
        f"times {scale:.2f} for this machine's speed; peak memory {result.peak_rss_mb} MiB)")
