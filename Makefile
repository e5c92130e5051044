PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_PIN := torch==2.13.0
CONSTRAINTS := $(VENV)/constraints.txt
STAMP := $(VENV)/.installed

.PHONY: install demo test test-all lint bench quality peers clean

install: $(STAMP)

# torch goes in first, from its own pin, and stays pinned as a constraint for every
# later pip call so that no dependency can pull another (multi-GB CUDA) build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	echo "$(TORCH_PIN)" > $(CONSTRAINTS)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_PIN)"
	$(BIN)/pip install -q -c $(CONSTRAINTS) -e ".[test,plot,bench,ray,ann]"
	$(BIN)/python scripts/warm_jit.py
	touch $(STAMP)

demo: install
	bash scripts/demo.sh

# `make test` runs the suite on 2 workers (pytest-xdist, a test file per worker at a time: the
# Ray tests, all in one file, share one Ray on one worker while the other worker runs the rest),
# leaving out the tests marked `extended` (long robustness checks: random kills, batch and
# thread independence of the bundled model, AVX2 kernels, more Ray shapes, the in-memory ranx
# cross-check, concurrent writers, embedding reuse and training resume checks, every --help
# example) to stay within 8 minutes on 2 cores. `make test-all` runs them too, and then, alone
# on the machine, the tests marked `serial` (processes killed by the clock; all of them are
# extended). Exit status 5 (nothing collected) of one run is no failure, as the other may have
# the tests; both 5 gives 5, as plain pytest would. A failure in the first run still runs the
# second (exit 1 is kept); an interrupt or usage error stops there. PYTEST_ARGS goes to both.
test: install
	@$(BIN)/python -m pytest -q -n 2 --dist loadfile -m "not serial and not extended" $(PYTEST_ARGS)

test-all: install
	@$(BIN)/python -m pytest -q -n 2 --dist loadfile -m "not serial" $(PYTEST_ARGS); first=$$?; \
	case $$first in 0|1|5) ;; *) exit $$first ;; esac; \
	$(BIN)/python -m pytest -q -p no:xdist -m serial $(PYTEST_ARGS); second=$$?; \
	if [ $$first -eq 5 ] && [ $$second -eq 5 ]; then exit 5; fi; \
	for rc in $$first $$second; do case $$rc in 0|5) ;; *) exit $$rc ;; esac; done

lint: install
	$(BIN)/ruff check llmrec tests benchmarks
	$(BIN)/ruff format --check llmrec tests benchmarks

bench: install
	$(BIN)/python benchmarks/run.py

# The peers that `make quality` compares llmrec with (RecTools) live in their own venv, never in
# llmrec's: rectools[torch] pins numpy and pandas versions llmrec does not use. torch goes in
# first from the same pin, which stays a constraint so that no peer pulls another torch build.
PEERS := .venv-peers
PEERS_STAMP := $(PEERS)/.installed
PEERS_REQUIREMENTS := benchmarks/peers/requirements.txt

peers: $(PEERS_STAMP)

$(PEERS_STAMP): $(PEERS_REQUIREMENTS)
	$(PYTHON) -m venv $(PEERS)
	echo "$(TORCH_PIN)" > $(PEERS)/constraints.txt
	$(PEERS)/bin/pip install -q --upgrade pip
	$(PEERS)/bin/pip install -q "$(TORCH_PIN)"
	$(PEERS)/bin/pip install -q -c $(PEERS)/constraints.txt -r $(PEERS_REQUIREMENTS)
	touch $(PEERS_STAMP)

quality: install peers
	$(BIN)/python benchmarks/quality.py

clean:
	rm -rf $(VENV) build dist *.egg-info  .pytest_cache
