# HAVEN GRAZURI Advance. `make help` lists the targets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000
# Settings default to production (DEBUG off, secrets required); the local targets ask for development.
DEV := DJANGO_DEBUG=true
DEMO_PAYBILL = --environment local --consumer-key local-demo --consumer-secret local-demo \
	--business-short-code 600984 --base-url http://$(HOST):$(PORT)

.DEFAULT_GOAL := help
.PHONY: help install run test lint fmt worker beat bench

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-9s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: $(STAMP) ## Create .venv and install the project with its dev extras

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: install ## Migrate, load demo data and serve on http://127.0.0.1:8000 in development (SQLite unless DATABASE_URL is set)
	$(DEV) $(BIN)/python manage.py migrate --noinput
	$(DEV) $(BIN)/python manage.py seed_demo --base-url http://$(HOST):$(PORT)
	$(DEV) $(BIN)/python manage.py setup_mpesa $(DEMO_PAYBILL)
	@echo "Staff Telegram bot: set TELEGRAM_BOT_TOKEN and TELEGRAM_BOT_USERNAME (from @BotFather), run $(DEV) .venv/bin/python manage.py telegram_poll in another terminal, link yourself with $(DEV) .venv/bin/python manage.py telegram_link admin"
	@echo "Pay the demo paybill from another terminal: $(DEV) .venv/bin/python manage.py simulate_c2b --phone 0712345678 --amount 500 --reference LOAN-000101"
	@echo "Dial the borrower USSD menu from another terminal: $(DEV) .venv/bin/python manage.py ussd_shell --phone 0712345678"
	@# The emulator that registers the URLs is this server: register once it answers (in the background,
	@# so that Ctrl-C stops the server as usual; it gives up after a minute).
	@( for _ in $$(seq 1 60); do sleep 1; \
		if $(DEV) $(BIN)/python manage.py setup_mpesa $(DEMO_PAYBILL) --register >/dev/null 2>&1; then \
		echo "Demo paybill 600984: callback URLs registered with the Daraja emulator."; exit 0; fi; done; \
		echo "Demo paybill 600984: could not register its URLs (is the server up?)" >&2 ) &
	$(DEV) $(BIN)/python manage.py runserver $(HOST):$(PORT)

test: install ## Run the whole suite in development settings (on PostgreSQL + Redis when DATABASE_URL / REDIS_URL are set)
	$(BIN)/pytest

lint: install ## ruff check, ruff format --check and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: install ## Format and autofix with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

worker: install ## Start a Celery worker (needs REDIS_URL)
	$(DEV) $(BIN)/celery -A config worker --loglevel INFO

beat: install ## Start Celery beat, the periodic scheduler (needs REDIS_URL)
	$(DEV) $(BIN)/celery -A config beat --loglevel INFO

bench: install ## Benchmarks: M-Pesa load with /metrics scraped, posting at 1M loans, USSD latency (need PostgreSQL + Redis; flush Redis db 14, 15 and 13), loan and statement imports
	$(BIN)/python bench/payments.py --scrape
	$(BIN)/python bench/payments.py --posting
	$(BIN)/python bench/ussd.py
	$(BIN)/python bench/import_loans.py
	$(BIN)/python bench/statement.py
