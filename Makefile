# The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run run-cluster test lint typecheck unit test-deps browser-deps postgres-deps promtool bench load soak clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

## make run: set up and start the relay plus a node with the example agents (Ctrl-C stops).
run: $(STAMP)
	$(BIN)/python -m runtime.quickstart

## make run-cluster: the same on PostgreSQL: a local server (data/cluster/pg), two relays
## on it and two nodes that know both (Ctrl-C stops it all; rm -rf data/cluster resets it).
run-cluster: $(STAMP) postgres-deps
	$(BIN)/python -m runtime.quickstart.cluster

## make test: set up and run lint, type checks and every test.
test: $(STAMP) test-deps lint typecheck unit

test-deps: browser-deps postgres-deps promtool

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

# The PostgreSQL store's tests start a throwaway server of their own from Debian's
# packages: install them when root and missing, without the package's own cluster.
postgres-deps:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null; then \
		if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
			echo "installing postgresql (the PostgreSQL tests start a throwaway server)"; \
			mkdir -p /etc/postgresql-common && \
			{ [ -e /etc/postgresql-common/createcluster.conf ] || \
			  echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf; } && \
			DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
		else \
			echo "PostgreSQL missing and not root: its tests are skipped here (they fail under CI)"; \
		fi; \
	fi

# promtool checks the alert rules; take it out of Debian's prometheus package without
# installing the package (which would add a user and start a server).
promtool: $(STAMP)
	@if ! command -v promtool >/dev/null && [ ! -x $(BIN)/promtool ] && command -v apt-get >/dev/null; then \
		echo "fetching promtool from Debian's prometheus package (alert rule tests)"; \
		tmp=$$(mktemp -d) && cd $$tmp && \
		{ apt-get download prometheus >/dev/null 2>&1 || { apt-get update -qq && apt-get download prometheus >/dev/null; }; } && \
		dpkg-deb --fsys-tarfile prometheus_*.deb | tar -xO ./usr/bin/promtool > $(CURDIR)/$(BIN)/promtool && \
		chmod +x $(CURDIR)/$(BIN)/promtool; rm -rf $$tmp; \
	fi

BENCH_STAMP := $(VENV)/.installed-bench

$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

## make bench: every benchmark (soak in quick mode), writes docs/PERFORMANCE.md.
bench: $(BENCH_STAMP)
	$(BIN)/python -m bench all

## make load: 5 nodes x 5 agents at 2 msg/s each for 5 minutes; relay CPU and memory.
load: $(BENCH_STAMP)
	$(BIN)/python -m bench load

## make soak: 30 minutes of relay outages and node kills, then the oracle check
## (COMMANDER_SOAK_MINUTES changes the length).
soak: $(BENCH_STAMP)
	$(BIN)/python -m bench soak

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
