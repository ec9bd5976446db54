# Two commands matter: `make run` starts the service, `make test` runs every check.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The official AsyncAPI parser (npm), which the tests run on docs/asyncapi.json.
PARSER := tools/asyncapi/node_modules/.installed
# The OpenID Connect provider the console's browser tests sign in through, and htmx, whose
# copy in console/static a test compares with the pinned package.
OIDC := tools/oidc/node_modules/.installed
HTMX := tools/htmx/node_modules/.installed

.PHONY: run test test-browser lint bench bench-console schemas asyncapi clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(PARSER): tools/asyncapi/package.json tools/asyncapi/package-lock.json
	cd tools/asyncapi && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $(PARSER)

$(OIDC): tools/oidc/package.json tools/oidc/package-lock.json
	cd tools/oidc && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $(OIDC)

$(HTMX): tools/htmx/package.json tools/htmx/package-lock.json
	cd tools/htmx && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $(HTMX)

run: $(STAMP)
	$(PY) -m token_service --with-audit-worker --with-console

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: lint $(PARSER) $(OIDC) $(HTMX)
	$(VENV)/bin/pytest -q

test-browser: $(STAMP) $(OIDC)
	$(VENV)/bin/pytest -q -m browser

bench-console: $(STAMP)
	$(PY) -m bench.console

bench: $(STAMP)
	$(PY) -m bench.commands

schemas: $(STAMP)
	$(PY) -m contracts.export docs/schemas

asyncapi: $(STAMP) $(PARSER)
	$(PY) -m specs.asyncapi docs/asyncapi.json
	node tools/asyncapi/validate.mjs docs/asyncapi.json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache tools/*/node_modules
