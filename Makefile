# The two commands a new user runs. Each does its own set-up in .venv.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TSTAMP := $(VENV)/.installed-test

.PHONY: demo test test-3.12 bench clean

# The second tested Python (the JAX 0.12 / ArviZ 1.x / PyMC 6 stack): python3.12 on PATH,
# else pyenv's.
PYTHON312 ?= $(shell PYENV_VERSION=3.12.1 pyenv which python3.12 2>/dev/null || command -v python3.12)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(TSTAMP): $(STAMP)
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

demo: $(STAMP)
	$(BIN)/vifit fit eight_schools --out demo-out

# One worker per core: most of the suite's time is JAX compiling, one thread per program.
test: $(TSTAMP)
	$(BIN)/python -m pytest -q -n auto

# The suite again on Python 3.12, in its own venv (.ci/run runs both).
test-3.12:
	@test -n "$(PYTHON312)" || (echo "error: no python3.12 found (PYTHON312=/path/to/python3.12)" >&2; exit 1)
	$(MAKE) test PYTHON=$(PYTHON312) VENV=.venv-3.12

bench: $(STAMP)
	$(BIN)/pip install --quiet -e ".[bench]"
	$(BIN)/python bench/overhead.py

clean:
	rm -rf $(VENV) .venv-3.12 demo-out build src/*.egg-info
