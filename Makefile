# Two entry points a fresh machine needs: `make demo` and `make test`.
# Both create .venv with the project and its test tools on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test lint bench bench-quick clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[generator,test]'
	touch $@

demo: $(VENV)/.installed
	$(PY) -m streamer.demo

test: $(VENV)/.installed
	$(PY) -m pytest

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

bench: $(VENV)/.installed
	$(PY) bench/run.py

bench-quick: $(VENV)/.installed
	$(PY) bench/run.py --quick

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
