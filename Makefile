# The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck unit browser-deps bench soak clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

## make run: set up and start the relay plus a node with the example agents (Ctrl-C stops).
run: $(STAMP)
	$(BIN)/python -m runtime.quickstart

## make test: set up and run lint, type checks and every test.
test: $(STAMP) browser-deps lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest

# Browser tests need Debian's chromium and chromium-driver; install them when root and missing.
browser-deps:
	@if [ ! -x /usr/bin/chromedriver ] || [ ! -x /usr/bin/chromium ]; then \
		if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
			echo "installing chromium and chromium-driver (browser tests)"; \
			DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
		else \
			echo "chromium/chromedriver missing and not root: browser tests will be skipped"; \
		fi; \
	fi

## make bench: every benchmark, writes docs/PERFORMANCE.md.
bench: $(STAMP)
	$(BIN)/python -m bench all

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
