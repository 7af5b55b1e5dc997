# Everything installs itself into a local virtual environment: `make demo` and `make test` work on a fresh machine.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_WORKDIR ?= runs/demo_dcgan_digits
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: install demo test test-slow test-all lint bench clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m genimg_jax.main --config=configs/dcgan.py --workdir=$(DEMO_WORKDIR) --config.eval.every=2500
	@echo "demo outputs: $(DEMO_WORKDIR)"

# `make test`: everything but the `slow` end-to-end runs (under 25 minutes on 2 cores); CI runs both.
test: $(STAMP)
	$(BIN)/pytest -q -m "not slow" --durations=20

test-slow: $(STAMP)
	$(BIN)/pytest -q -m slow --durations=20

test-all: $(STAMP)
	$(BIN)/pytest -q --durations=30

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python -m genimg_jax.tools.benchmark --config=configs/dcgan.py
	$(BIN)/python -m genimg_jax.tools.benchmark --config=configs/vae.py

clean:
	rm -rf $(VENV) runs .pytest_cache
