# stemkit: `make demo` and `make test` each build the environment first when it is missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint format env clean data serve

# The environment: a virtualenv with the exact pins of pyproject.toml; numba warmed once here,
# so no notebook pays the first-compile cost.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m stemkit.warmup
	touch $(STAMP)

env: $(STAMP)

data/demo/.complete: $(STAMP) stemkit/synth.py stemkit/speechdata.py data/speech/*.flac
	$(PY) -m stemkit.synth data/demo
	$(PY) -m stemkit.speechdata data/demo
	touch $@

data: data/demo/.complete

demo: data/demo/.complete
	$(VENV)/bin/stemkit demo --out reports/demo

test: data/demo/.complete
	$(PY) -m pytest -q -p no:cacheprovider --nbmake --doctest-modules stemkit tests notebooks

lint: $(STAMP)
	$(VENV)/bin/ruff check stemkit tests bench scripts notebooks/conftest.py
	$(VENV)/bin/ruff format --check stemkit tests bench scripts notebooks/conftest.py

format: $(STAMP)
	$(VENV)/bin/ruff format stemkit tests bench scripts
	$(VENV)/bin/ruff check --fix stemkit tests bench scripts

serve: $(STAMP)
	$(VENV)/bin/stemkit serve

clean:
	rm -rf $(VENV) data/demo/*/ reports/*/ .pytest_cache
