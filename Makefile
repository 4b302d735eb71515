# OpenScan Portal: `make run` serves the portal with its worker; `make test` runs the suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
# The suite runs on PostgreSQL when it answers (the concurrency tests need it), else on SQLite.
PG_URL ?= postgres://postgres@127.0.0.1:5432/test
DEV_ENV := DJANGO_DEBUG=true

.PHONY: install run dev worker test test-fast test-sqlite e2e lint fmt check deploy-check bench clean

$(BIN)/.installed: pyproject.toml uploader/pyproject.toml scripts/system-deps.sh
	bash scripts/system-deps.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[engine,dev]" -e ./uploader
	touch $@

# three.js for the viewer, pinned in package-lock.json and served by the portal (no CDN).
static/vendor/three/VERSION: package.json package-lock.json scripts/vendor_three.py
	npm ci --no-audit --no-fund
	$(PYTHON) scripts/vendor_three.py

install: $(BIN)/.installed static/vendor/three/VERSION

run: install
	$(DEV_ENV) $(BIN)/python manage.py migrate --noinput
	$(DEV_ENV) $(BIN)/python manage.py bootstrap --admin admin
	$(DEV_ENV) PORT=$(PORT) $(BIN)/python manage.py runportal

dev: install
	$(DEV_ENV) $(BIN)/python manage.py migrate --noinput
	$(DEV_ENV) $(BIN)/python manage.py runserver $(PORT)

worker: install
	$(DEV_ENV) $(BIN)/python manage.py qcluster

test: install
	@if [ -z "$$DATABASE_URL" ] && $(BIN)/python scripts/pg_ready.py "$(PG_URL)"; then \
		echo "Running the suite on PostgreSQL ($(PG_URL))"; \
		DATABASE_URL="$(PG_URL)" $(BIN)/pytest $(PYTEST_ARGS); \
	elif [ -n "$$DATABASE_URL" ]; then \
		$(BIN)/pytest $(PYTEST_ARGS); \
	else \
		echo "PostgreSQL is not reachable: running on SQLite without the PostgreSQL-only tests"; \
		$(BIN)/pytest -m "not slow and not gpu and not postgres" $(PYTEST_ARGS); \
	fi

# The fast part on SQLite (no real engine, no browser, no PostgreSQL-only tests).
test-sqlite: install
	env -u DATABASE_URL $(BIN)/pytest -m "not slow and not gpu and not postgres and not engine and not e2e" $(PYTEST_ARGS)

e2e: install
	$(BIN)/pytest -m e2e $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/vulture

fmt: install
	$(BIN)/ruff format .

deploy-check: install
	DJANGO_DEBUG=false DJANGO_SECRET_KEY=$$($(BIN)/python -c 'import secrets;print(secrets.token_urlsafe(64))') \
	DJANGO_ALLOWED_HOSTS=portal.example.org DATABASE_URL="$(PG_URL)" \
	$(BIN)/python manage.py check --deploy --fail-level WARNING

bench: install
	$(BIN)/python -m benchmarks.portal
	$(BIN)/python -m benchmarks.slow_clients
	$(BIN)/python -m benchmarks.wire
	$(BIN)/python -m benchmarks.reconstruction
	$(BIN)/python -m benchmarks.eta
	$(BIN)/python -m benchmarks.user_path

clean:
	rm -rf $(VENV) staticfiles
