# The two commands a newcomer needs: `make run` and `make test`.
# Both install what they need first (a venv from pyproject.toml, GraphiQL assets from npm).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install run test lint bench soak clean lock

# requirements.lock pins every package, dev tools included, at the versions the
# gate passed with; it is a constraints file, so the Dockerfile installs through
# it too without the dev extras.
$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev]'
	touch $@

# After changing dependencies in pyproject.toml: re-resolve, keeping every pin
# that still fits. `make lock UPGRADE=1` moves every pin to the newest version
# pyproject.toml allows. Then `make test`, and commit both files.
lock:
	set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(PYTHON) -m venv "$$tmp"; \
	"$$tmp/bin/pip" install --quiet pip-tools==7.6.2; \
	CUSTOM_COMPILE_COMMAND="make lock" "$$tmp/bin/pip-compile" --quiet --extra dev --strip-extras \
		--allow-unsafe --no-emit-index-url --no-emit-find-links --no-emit-trusted-host \
		$(if $(UPGRADE),--upgrade) --output-file requirements.lock pyproject.toml

web/node_modules/.installed: web/package.json
	cd web && npm install --no-audit --no-fund --ignore-scripts --loglevel=error || echo "npm failed: GraphiQL will load from the CDN"
	touch $@

install: $(VENV)/.installed web/node_modules/.installed

run: install
	$(BIN)/python -m permdev.dev

lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy

test: install
	$(BIN)/ruff format --check .
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
