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

.PHONY: install lint format typecheck test unit integration e2e conformance serve bench eval fuzz soak check-template clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

typecheck: install
	$(BIN)/mypy

test: install lint
	$(BIN)/pytest -q $(PYTEST_ARGS)

unit: install
	$(BIN)/pytest -q tests/unit $(PYTEST_ARGS)

integration: install
	$(BIN)/pytest -q tests/integration $(PYTEST_ARGS)

e2e: install
	$(BIN)/pytest -q tests/e2e $(PYTEST_ARGS)

# API Gateway-shaped event fixtures against the handler and against what `selador serve` builds.
conformance: install
	$(BIN)/pytest -q tests/conformance $(PYTEST_ARGS)

serve: install
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

check-template: install
	bash scripts/check-template.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .aws-sam build dist
