# The two commands: `make trial` and `make test`. Each sets up .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
CONFIG ?= config/config.yaml
CORES  ?= 2

.PHONY: trial test lint bench peers clean

$(STAMP): pyproject.toml setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,dev]"
	touch $(STAMP)

trial: $(STAMP)
	$(BIN)/isct run $(CONFIG) --cores $(CORES)

# The tests also send stages to SLURM (the optional `slurm` extra); `make trial` needs no extra.
$(VENV)/.slurm-stamp: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[slurm]"
	touch $@

test: $(STAMP) $(VENV)/.slurm-stamp
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/snakemake --lint --cores 1

bench: $(STAMP)
	for f in benchmarks/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

# Peers with older pins (EasyVVUQ needs numpy < 2) live in their own venv, for side-by-side
# benchmarks only; never in the project's dependencies.
peers:
	test -x .venv-peers/bin/python || $(PYTHON) -m venv .venv-peers
	.venv-peers/bin/python -m pip install --quiet "easyvvuq>=1.2" six

clean:
	rm -rf results reports .snakemake
