# The two commands a fresh machine needs: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CLI := $(VENV)/bin/digits-jax
STAMP := $(VENV)/.installed
WORKDIRS ?= workdirs

.PHONY: install demo test lint format clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(CLI) data
	$(CLI) pretrain --workdir $(WORKDIRS)/dae
	$(CLI) train --workdir $(WORKDIRS)/classifier --init-from $(WORKDIRS)/dae
	$(CLI) evaluate --workdir $(WORKDIRS)/classifier
	@echo "figures: $(WORKDIRS)/dae/reconstructions.png $(WORKDIRS)/dae/curves.png $(WORKDIRS)/classifier/curves.png"

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(WORKDIRS) .pytest_cache
