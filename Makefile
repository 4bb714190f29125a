# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements-dev.lock pyproject.toml | cksum | cut -d' ' -f1)
TEST_POSTGRES_URL ?= postgresql+asyncpg://postgres@127.0.0.1:5432/test
export TEST_POSTGRES_URL

.PHONY: run test check fmt lock venv clean bench bench-quick soak screenshots

venv: $(STAMP)

$(STAMP): requirements-dev.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("grouped-users needs Python 3.11 or newer") if sys.version_info < (3, 11) else None'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-*
	touch $@

## Serve on http://127.0.0.1:8000 with the SQLite file ./data/grouped-users.db (migrates
## first). Local development: authentication is off, which serve allows on loopback only.
run: venv
	GROUPED_USERS_AUTH=disabled $(BIN)/grouped-users serve --host 127.0.0.1 --port 8000

## The whole suite, on SQLite and on PostgreSQL ($$TEST_POSTGRES_URL).
test: venv
	$(BIN)/python -m pytest

## The full soak test: 64 clients for 60 s against `serve --workers 4` on PostgreSQL
## ($$TEST_POSTGRES_URL); prints requests, errors by status and p50/p99 latency.
soak: venv
	$(BIN)/python -m tests.support.soak --seconds 60 --clients 64 --workers 4 --database postgresql

## The console's browser tests, writing their pictures to docs/screenshots (README).
screenshots: venv
	UPDATE_SCREENSHOTS=1 $(BIN)/python -m pytest tests/ui

## Lint, format check, strict typing, Dockerfile lint, compose.yaml: Docker Compose's own
## validation where it is installed (v2, else v1), else its test of the production shape.
check: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/hadolint Dockerfile
	@if docker compose version >/dev/null 2>&1; then compose="docker compose"; \
	elif docker-compose version >/dev/null 2>&1; then compose=docker-compose; fi; \
	if [ -n "$$compose" ]; then echo "POSTGRES_PASSWORD=check $$compose -f compose.yaml config -q"; \
		POSTGRES_PASSWORD=check $$compose -f compose.yaml config -q; \
	else echo "no Docker Compose here: compose.yaml checked by tests/test_compose.py"; \
		$(BIN)/python -m pytest -q -p no:cacheprovider tests/test_compose.py; fi

fmt: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## Re-pin the lock files after changing dependencies in pyproject.toml (needs uv).
lock:
	uv pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes -o requirements.lock
	uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 --generate-hashes -o requirements-dev.lock

## Benchmarks (bench/README.md): wrk on loopback against the real server, as a ratio
## to a bare FastAPI ceiling app; SQLite and PostgreSQL. bench-quick takes < 2 minutes.
bench: venv
	$(BIN)/python -m bench.run --profile full

bench-quick: venv
	$(BIN)/python -m bench.run --profile quick

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
