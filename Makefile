# Two entry points: `make demo` (the demo on the embedded local grid) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# The oldest python-irodsclient setup.cfg admits: CI runs the suite on it too.
PRC_OLDEST := 3.1.0
OLD        := .venv-prc-$(PRC_OLDEST)

.PHONY: demo test test-prc-oldest bench clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/seisstore demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/python -m pytest -q tests

# The tests that exercise python-irodsclient directly, again on the oldest release setup.cfg
# admits (the default venv has the newest); long fault runs are not repeated.
PRC_TESTS := tests/test_secure_*.py tests/test_exit_codes.py tests/test_one_path.py tests/test_first_contact.py \
             tests/test_seisstore_catalogue.py tests/test_seisstore_reader.py tests/test_seisstore_ingest.py
$(OLD)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(OLD)
	$(OLD)/bin/pip install --quiet --upgrade pip
	$(OLD)/bin/pip install --quiet -e '.[test]' 'python-irodsclient==$(PRC_OLDEST)'
	touch $@

test-prc-oldest: $(OLD)/.installed
	$(OLD)/bin/python -m pytest -q -p no:cacheprovider -m "not slow" $(PRC_TESTS)

bench: $(STAMP)
	$(BIN)/python benchmarks/grid_throughput.py

clean:
	rm -rf $(VENV) $(OLD) demo-grid
