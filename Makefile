# simloom developer commands. `make help` lists them.
#
# Python venvs live in .venv/py3.12 and .venv/py3.13 and are created on demand by
# scripts/bootstrap.sh; the extension is built into them by `maturin develop --release`
# with a cargo target dir per Python (target/py3.12, target/py3.13).

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
# The steps of `make test` must run in order and stop at the first failure.
.NOTPARALLEL:
MAKEFLAGS += --no-print-directory

PY_MAIN     := 3.12
PY_VERSIONS := 3.12 3.13
# Two pytest-xdist workers (the default suite is about 2,900 tests; serial it takes
# ~14 min per Python on a 2-core machine). PYTEST_ARGS= runs it serially.
PYTEST_ARGS ?= -n 2

ROOT      := $(CURDIR)
BOOTSTRAP := scripts/bootstrap.sh
IN_VENV   := scripts/in-venv.sh
# Python dirs that ruff checks (only those that exist in this checkout).
LINT_DIRS  = $(wildcard python tests examples benchmarks)
STUBTEST_ALLOWLIST := scripts/stubtest-allowlist.txt

say = @printf 'simloom: %s\n' $(1)

# The per-version rules below spell out 3.12/3.13 so `make help` can list them.
VENV_TARGETS   := $(addprefix venv-,$(PY_VERSIONS))
BUILD_TARGETS  := $(addprefix build-,$(PY_VERSIONS))
PYTEST_TARGETS := $(addprefix pytest-,$(PY_VERSIONS))

.PHONY: help setup build browser redis postgres nats screenshot demo test lint bench clean distclean \
        fmt-check clippy clippy-core clippy-python cargo-test \
        ruff mypy stubtest pytest suites suites-ci \
        $(VENV_TARGETS) $(BUILD_TARGETS) $(PYTEST_TARGETS)

help: ## show this help
	@echo 'usage: make TARGET [PYTEST_ARGS="..."]'
	@echo
	@awk 'BEGIN { FS = ":.*## " } /^[a-zA-Z0-9 ._-]+:.*## / { printf "  %-24s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

# ---------------------------------------------------------------- user-facing

demo: build-$(PY_MAIN) ## build the extension (release) and run examples/demo.py on Python 3.12
	$(call say,'running examples/demo.py (Python $(PY_MAIN)) ...')
	@$(IN_VENV) $(PY_MAIN) python examples/demo.py

test: fmt-check clippy cargo-test build-$(PY_MAIN) ruff mypy stubtest pytest-$(PY_MAIN) build-3.13 pytest-3.13 suites-ci ## run every check (Rust + Python 3.12 + 3.13 + two third-party suites); stops at the first failure
	$(call say,'all checks passed')

setup: $(VENV_TARGETS) browser redis postgres nats ## create both venvs (.venv/py3.12, .venv/py3.13) with the dev tools, Chromium, redis-server, PostgreSQL and nats-server

browser: ## install Chromium from the OS packages if it is missing (tests/test_timeline.py needs it)
	@$(BOOTSTRAP) browser

redis: ## install redis-server from the OS packages if it is missing (the tests start their own on loopback)
	@$(BOOTSTRAP) redis

postgres: ## install PostgreSQL from the OS packages if it is missing (the tests start their own on loopback)
	@$(BOOTSTRAP) postgres

nats: ## install nats-server from the OS packages if it is missing (the tests start their own on loopback)
	@$(BOOTSTRAP) nats

screenshot: build-$(PY_MAIN) browser ## docs/img/timeline-raft.png: the toy Raft failure's timeline in headless Chromium
	$(call say,'scripts/timeline_screenshot.py ...')
	@$(IN_VENV) $(PY_MAIN) python scripts/timeline_screenshot.py

build: build-$(PY_MAIN) ## build the extension (release) into the Python 3.12 venv

lint: fmt-check clippy ruff mypy stubtest ## cargo fmt/clippy, ruff, mypy --strict and stubtest

bench: build-$(PY_MAIN) ## run every benchmarks/bench_*.py with the Python 3.12 venv
	@shopt -s nullglob; benches=(benchmarks/bench_*.py); \
	if (( $${#benches[@]} == 0 )); then echo 'simloom: no benchmarks/bench_*.py found'; exit 0; fi; \
	for b in "$${benches[@]}"; do \
	  echo "simloom: running $$b (Python $(PY_MAIN)) ..."; \
	  $(IN_VENV) $(PY_MAIN) python "$$b"; \
	done

pytest: $(PYTEST_TARGETS) ## pytest on Python 3.12 and 3.13 (extra args: PYTEST_ARGS="-x -k foo")

clean: ## remove the venvs and the extension modules built into python/simloom
	rm -rf $(addprefix .venv/py,$(PY_VERSIONS))
	rm -f python/simloom/_core.*.so python/simloom/_core.*.pyd

distclean: clean ## clean, and also remove cargo's target/ directory
	rm -rf target

# ---------------------------------------------------------------- python envs

venv-3.12 venv-3.13: venv-%: ## create/refresh .venv/pyX.Y (pip runs only when pyproject.toml changed)
	@$(BOOTSTRAP) venv $*

build-3.12 build-3.13: build-%: ## venv + maturin develop --release for Python X.Y
	@$(BOOTSTRAP) build $*

pytest-3.12 pytest-3.13: pytest-%: build-% browser redis nats ## pytest on Python X.Y
	$(call say,'pytest on Python $* ...')
	@$(IN_VENV) $* python -m pytest $(PYTEST_ARGS)

suites: build-$(PY_MAIN) build-3.13 ## every third-party suite (scripts/suites.py): stock vs --simloom vs --simloom=20, with issue 10's goals
	$(call say,'third-party suites under pytest --simloom (Python $(PY_MAIN)) ...')
	@$(IN_VENV) $(PY_MAIN) python scripts/suites.py

suites-ci: build-$(PY_MAIN) ## the two third-party suites CI runs (async-lru, aioitertools)
	$(call say,'two third-party suites under pytest --simloom (Python $(PY_MAIN)) ...')
	@$(IN_VENV) $(PY_MAIN) python scripts/suites.py --ci

# ---------------------------------------------------------------- rust checks

fmt-check: ## cargo fmt --all --check (never rewrites files)
	$(call say,'cargo fmt --check ...')
	@cargo fmt --all --check

clippy: clippy-core clippy-python ## cargo clippy -D warnings, without and with the python feature

clippy-core:
	$(call say,'cargo clippy (no features) ...')
	@cargo clippy --workspace --all-targets -- -D warnings

clippy-python: venv-$(PY_MAIN)
	$(call say,'cargo clippy --features python (Python $(PY_MAIN)) ...')
	@PYO3_PYTHON=$(ROOT)/.venv/py$(PY_MAIN)/bin/python CARGO_TARGET_DIR=$(ROOT)/target/py$(PY_MAIN) \
	  cargo clippy -p simloom-core --all-targets --features python -- -D warnings

cargo-test: ## cargo test (pure engine, no Python)
	$(call say,'cargo test ...')
	@cargo test --workspace

# ---------------------------------------------------------------- python checks (3.12 venv)

ruff: venv-$(PY_MAIN) ## ruff check + ruff format --check on python tests examples benchmarks
	$(call say,'ruff check $(LINT_DIRS) ...')
	@$(IN_VENV) $(PY_MAIN) ruff check $(LINT_DIRS)
	$(call say,'ruff format --check $(LINT_DIRS) ...')
	@$(IN_VENV) $(PY_MAIN) ruff format --check $(LINT_DIRS)

mypy: venv-$(PY_MAIN) ## mypy --strict (config: [tool.mypy] in pyproject.toml)
	$(call say,'mypy --strict ...')
	@$(IN_VENV) $(PY_MAIN) mypy --strict

stubtest: build-$(PY_MAIN) ## check python/simloom/_core.pyi against the built extension
	$(call say,'stubtest simloom._core ...')
	@# Without the stub stubtest reports success on nothing; without MYPYPATH it
	@# cannot see python/simloom (no py.typed needed this way).
	@test -f python/simloom/_core.pyi || \
	  { echo 'simloom: error: python/simloom/_core.pyi is missing (stubtest needs it)' >&2; exit 1; }
	@MYPYPATH=$(ROOT)/python $(IN_VENV) $(PY_MAIN) python -m mypy.stubtest simloom._core \
	  $(if $(wildcard $(STUBTEST_ALLOWLIST)),--allowlist $(STUBTEST_ALLOWLIST))
