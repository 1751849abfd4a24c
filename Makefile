# Two entry points a fresh machine needs: `make demo` and `make test`.
# Both create .venv with the project and its test tools on first use (test: checkov too).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# checkov (tests/install) pins older boto3/botocore/packaging than the project: its own venv,
# inside $(VENV) so that it is ignored and cleaned with it.
CHECKOV_VENV ?= $(VENV)/checkov

.PHONY: demo test lint bench bench-quick clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[generator,test]'
	touch $@

$(CHECKOV_VENV)/.installed: tests/install/checkov-requirements.txt | $(VENV)/.installed
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet -r tests/install/checkov-requirements.txt
	touch $@

demo: $(VENV)/.installed
	$(PY) -m streamer.demo

test: $(VENV)/.installed $(CHECKOV_VENV)/.installed
	$(PY) -m pytest

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# The kind suite (tests/e2e/): the README's walkthrough on a kind cluster. Needs Docker and the
# network; E2E_ARGS passes pytest-kind's options, e.g. E2E_ARGS=--keep-cluster.
.PHONY: e2e
e2e: $(VENV)/.installed
	$(PY) -m pytest --kind tests/e2e $(E2E_ARGS)

bench: $(VENV)/.installed
	$(PY) bench/run.py

bench-quick: $(VENV)/.installed
	$(PY) bench/run.py --quick

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
