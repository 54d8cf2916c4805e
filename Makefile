# Selador backend. Every target sets itself up: `make serve` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 3001
HOST ?= 127.0.0.1
PYTEST_ARGS ?=
# More `selador serve` flags, e.g. make serve SERVE_ARGS="--env MODEL_PROVIDER=ollama --env OLLAMA_MODEL=qwen2.5:7b-instruct"
SERVE_ARGS ?=

# Locked, hashed dependencies (docs/deploy.md, "Locked dependencies"). Both are written by uv from
# pyproject.toml; pip installs them in hash-checking mode (every line has --hash, so pip requires
# hashes for everything and refuses any file whose digest differs).
#   requirements-dev.txt  the development environment (.venv): [project] + the dev extra
#   src/requirements.txt  the Lambda bundle: [project] only; `sam build` installs it (CodeUri: src/)
DEV_LOCK := requirements-dev.txt
BUNDLE_LOCK := src/requirements.txt
# Lock and audit tools, pinned, in a venv of their own (never in .venv, never in the bundle).
# uv, not pip-tools: one resolution that is valid on every platform (--universal), so the bundle
# lock carries the hashes of the manylinux aarch64 (Lambda) and x86_64 (smoke-test twin) wheels of
# Python 3.13 while this machine runs 3.11 on x86_64; pip-compile resolves for the interpreter and
# platform it runs on. uv is a single static binary with no dependencies, and resolves in seconds.
TOOLS := .tools-venv
UV_VERSION := 0.13.9
PIP_AUDIT_VERSION := 2.10.1
TOOLS_STAMP := $(TOOLS)/.installed-uv$(UV_VERSION)-pip-audit$(PIP_AUDIT_VERSION)
UV := $(TOOLS)/bin/uv
# Extra uv arguments for `make lock`: LOCK_ARGS=--upgrade (newest of everything),
# LOCK_ARGS="--upgrade-package boto3". Without them, pins already in the locks are kept.
LOCK_ARGS ?=
LOCK_COMMON := --generate-hashes --universal --quiet --custom-compile-command "make lock"

.PHONY: install tools browser lock audit lint format typecheck test unit integration e2e conformance serve bench eval fuzz soak check-template docs clean

# Installs the dev lock (hash-checked), then the project itself without dependencies. A changed
# lock re-runs this: pins move to the lock's versions; packages the lock dropped stay until
# `make clean install`.
$(STAMP): pyproject.toml $(DEV_LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r $(DEV_LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# The JavaScript client's dev dependency (ws, for its Node tests), from its lockfile. Node >= 20 is
# required rather than skipped: without it the client's tests could not run, and `make test` must
# fail saying so, not pass without them.
JS_CLIENT := clients/js
JS_STAMP := $(JS_CLIENT)/node_modules/.installed

$(JS_STAMP): $(JS_CLIENT)/package.json $(JS_CLIENT)/package-lock.json
	@command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || { \
		echo "make install: Node.js >= 20 with npm is needed (the JavaScript client in $(JS_CLIENT) is tested in Node)" >&2; exit 1; }
	@node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' || { \
		echo "make install: Node.js >= 20 is needed, found $$(node --version)" >&2; exit 1; }
	cd $(JS_CLIENT) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $(JS_STAMP)

install: $(STAMP) $(JS_STAMP)

$(TOOLS_STAMP):
	rm -rf $(TOOLS)
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet "uv==$(UV_VERSION)" "pip-audit==$(PIP_AUDIT_VERSION)"
	touch $(TOOLS_STAMP)

tools: $(TOOLS_STAMP)

# Re-resolve both locks from pyproject.toml (PyPI). The dev lock first; the bundle lock is then
# constrained by it, so every package the bundle ships has the version .venv is tested with.
lock: tools
	$(UV) pip compile pyproject.toml --extra dev --python-version 3.11 $(LOCK_COMMON) $(LOCK_ARGS) -o $(DEV_LOCK)
	$(UV) pip compile pyproject.toml --python-version 3.13 $(LOCK_COMMON) $(LOCK_ARGS) -c $(DEV_LOCK) -o $(BUNDLE_LOCK)

# pip-audit --strict against both locks. Needs a vulnerability database (PyPI's JSON API or OSV);
# where none is reachable it reports NOT RUN and exits 2, never "clean". Not part of CI here: these
# machines reach PyPI's package files but not its JSON API, so it cannot run (docs/deploy.md).
AUDIT_ARGS ?=
audit: tools
	$(TOOLS)/bin/python scripts/audit.py $(AUDIT_ARGS) $(BUNDLE_LOCK) $(DEV_LOCK)

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

typecheck: install
	$(BIN)/mypy

# Debian's chromium for the playground's browser tests (tests/e2e/browser): Playwright (from the dev
# lock) drives it through executable_path and never downloads a browser of its own. Installed with
# apt-get when missing, as root or through passwordless sudo; otherwise this stops and says how.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if ! command -v apt-get >/dev/null 2>&1; then \
	    echo "make: the browser tests need chromium and this machine has no apt-get: install chromium" >&2; exit 1; \
	  elif [ "$$(id -u)" = 0 ]; then SUDO=; \
	  elif sudo -n true 2>/dev/null; then SUDO=sudo; \
	  else echo "make: the browser tests need Debian's chromium: run 'sudo apt-get install -y chromium'" >&2; exit 1; fi; \
	  echo "installing chromium (apt-get) for the browser tests"; \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
	    || { echo "make: apt-get install chromium failed" >&2; exit 1; }; }

# SELADOR_REQUIRE_BROWSER: here a missing browser fails the browser tests instead of skipping them.
test: install tools lint browser
	SELADOR_REQUIRE_BROWSER=1 $(BIN)/pytest -q $(PYTEST_ARGS)

unit: install tools
	$(BIN)/pytest -q tests/unit $(PYTEST_ARGS)

integration: install
	$(BIN)/pytest -q tests/integration $(PYTEST_ARGS)

e2e: install browser
	SELADOR_REQUIRE_BROWSER=1 $(BIN)/pytest -q tests/e2e $(PYTEST_ARGS)

# API Gateway-shaped event fixtures against the handler and against what `selador serve` builds.
conformance: install
	$(BIN)/pytest -q tests/conformance $(PYTEST_ARGS)

# Only the Python environment: the gateway (and the page it serves) need no Node.
serve: $(STAMP)
	$(BIN)/selador serve --host $(HOST) --port $(PORT) $(SERVE_ARGS)

bench: install
	$(BIN)/python -m bench

# Answer quality on tests/eval/questions.yaml (offline responder, bundled KB); writes eval/results.json.
eval: install
	$(BIN)/python -m eval

fuzz: install
	SELADOR_FUZZ_EXAMPLES=10000 SELADOR_FUZZ_SEED=random $(BIN)/pytest -q tests/unit/test_fuzz.py -p no:randomly --timeout 900 --hypothesis-show-statistics

soak: install
	$(BIN)/python -m bench.soak

# The machine-readable API documents, docs/asyncapi.yaml (WebSocket API, from src/selador/protocol.py)
# and docs/openapi.json (HTTP API, by Powertools from the routes); tests/unit/apidocs fails when the
# committed ones are stale (`python -m selador.local.apidocs --check` only reports).
docs: install
	$(BIN)/python -m selador.local.apidocs --out docs

check-template: install
	bash scripts/check-template.sh

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache .aws-sam build dist $(JS_CLIENT)/node_modules
