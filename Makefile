# One command each: `make run` (set up, then run the main job), `make export` (package its best
# model) and `make test` (set up, then lint, type-check and test). `make test-fast` runs only the
# quick tier of the tests: no slow, PostgreSQL or browser test, no lint. Everything installs into
# .venv beside this file.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
DATA   ?= ../shared/cxr/radiography/COVID-19_Radiography_Dataset
TRIALS ?= 20
# No new trial starts after this many seconds (running ones finish): the main job stays
# under 30 minutes on 2 CPU cores whatever the sampler draws.
TIMEOUT ?= 1500
# A folder of Keras-named ImageNet weight files where one is beside the checkout, else download.
WEIGHTS ?= $(if $(wildcard ../shared/weights/*.h5),../shared/weights,imagenet)
# The CPU build of TensorFlow; use TF_EXTRA=gpu on a machine with NVIDIA GPUs.
TF_EXTRA ?= cpu

.PHONY: setup run export test test-fast lint bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[$(TF_EXTRA),dev]"
	touch $@

setup: $(VENV)/.installed

run: setup
	$(PY) -m cxrdata.inspect "$(DATA)"
	$(PY) -m search.launch --trials $(TRIALS) --timeout $(TIMEOUT) --data "$(DATA)" --weights "$(WEIGHTS)"

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# The study's best model: an ensemble of its top trials, measured once on the test split.
export: setup
	$(PY) -m search.export --study cxr-search --out winner

test: lint
	$(PY) -m pytest

# Every test but those marked slow, postgres or browser (pyproject.toml): under 3 minutes on 2 CPU cores.
test-fast: setup
	$(PY) -m pytest -m "not slow and not postgres and not browser"

bench: setup
	$(PY) -m bench.pipeline --data "$(DATA)"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
