# The two commands a newcomer needs: `make run` and `make test`.
# Both install what they need first (a venv from pyproject.toml, GraphiQL assets from npm).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install run test lint bench soak clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

web/node_modules/.installed: web/package.json
	cd web && npm install --no-audit --no-fund --ignore-scripts --loglevel=error || echo "npm failed: GraphiQL will load from the CDN"
	touch $@

install: $(VENV)/.installed web/node_modules/.installed

run: install
	$(BIN)/python -m api.dev

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy

test: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/pytest -q

bench: install
	$(BIN)/python bench/permissions.py

soak: install
	$(BIN)/python bench/soak.py

clean:
	t=$$(readlink .data/postgres 2>/dev/null); case "$$t" in */permgraph-*/data-*) rm -rf "$$t";; esac
	rm -rf .data
