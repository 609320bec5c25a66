# stemkit: `make demo` and `make test` each build the environment first when it is missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint format env clean data serve lab wheel

# The environment: a virtualenv with the exact pins of pyproject.toml; numba warmed once here,
# so no notebook pays the first-compile cost.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,lab]'
	$(PY) -m stemkit.warmup
	touch $(STAMP)

env: $(STAMP)

data/demo/.complete: $(STAMP) $(wildcard stemkit/demo/*.py) $(wildcard data/speech/*.flac)
	$(VENV)/bin/stemkit demo-data data/demo
	touch $@

data: data/demo/.complete

demo: data/demo/.complete
	$(VENV)/bin/stemkit demo --out reports/demo --data data/demo

# every core: tests are grouped by file (their module fixtures are built once) and the slow
# files start first, longest first (tests/conftest.py; --no-loadscope-reorder keeps that order
# instead of xdist's by-count one); TEST_WORKERS=0 runs them in this process
TEST_WORKERS ?= auto
test: data/demo/.complete
	$(PY) -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadgroup \
	  --no-loadscope-reorder --nbmake --doctest-modules stemkit tests notebooks

# ruff, and the layer contract of pyproject.toml ([tool.importlinter])
lint: $(STAMP)
	$(VENV)/bin/ruff check stemkit tests bench scripts notebooks/conftest.py
	$(VENV)/bin/ruff format --check stemkit tests bench scripts notebooks/conftest.py
	$(VENV)/bin/lint-imports

format: $(STAMP)
	$(VENV)/bin/ruff format stemkit tests bench scripts
	$(VENV)/bin/ruff check --fix stemkit tests bench scripts

serve: $(STAMP)
	$(VENV)/bin/stemkit serve

# JupyterLab on notebooks/ (the demo batch: `make demo` first)
lab: $(STAMP)
	$(VENV)/bin/stemkit lab notebooks

# the wheel a QA team installs into its own Jupyter environment
wheel: $(STAMP)
	$(PY) -m pip wheel --quiet --no-deps --wheel-dir dist .

clean:
	rm -rf $(VENV) dist data/demo/*/ data/demo/.complete reports/*/ .pytest_cache
