# The two commands a fresh machine needs: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CLI := $(VENV)/bin/digits-jax
STAMP := $(VENV)/.installed
WORKDIRS ?= workdirs
SAMPLE := digits_jax/assets/sample_page.jpg

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
	$(CLI) read $(SAMPLE) --model $(WORKDIRS)/classifier --annotate $(WORKDIRS)/sample_page_read.jpg
	@echo "sample page truth: $$($(PY) -c 'import json,sys; print(json.load(open(sys.argv[1]))["text"])' $(SAMPLE:.jpg=.json))"
	@echo "figures: $(WORKDIRS)/dae/reconstructions.png $(WORKDIRS)/dae/curves.png"
	@echo "         $(WORKDIRS)/classifier/curves.png $(WORKDIRS)/sample_page_read.jpg"

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
