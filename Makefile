PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_PIN := torch==2.13.0
CONSTRAINTS := $(VENV)/constraints.txt
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench quality clean

install: $(STAMP)

# torch goes in first, from its own pin, and stays pinned as a constraint for every
# later pip call so that no dependency can pull another (multi-GB CUDA) build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	echo "$(TORCH_PIN)" > $(CONSTRAINTS)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_PIN)"
	$(BIN)/pip install -q -c $(CONSTRAINTS) -e ".[test,plot,bench,ray]"
	touch $(STAMP)

demo: install
	bash scripts/demo.sh

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check llmrec tests benchmarks
	$(BIN)/ruff format --check llmrec tests benchmarks

bench: install
	$(BIN)/python benchmarks/run.py

quality: install
	$(BIN)/python benchmarks/quality.py

clean:
	rm -rf $(VENV) build dist *.egg-info  .pytest_cache
