# HAVEN GRAZURI Advance. `make help` lists the targets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000

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

run: install ## Migrate, load demo data and serve on http://127.0.0.1:8000 (SQLite unless DATABASE_URL is set)
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo --base-url http://$(HOST):$(PORT)
	$(BIN)/python manage.py setup_mpesa --environment local --consumer-key local-demo \
		--consumer-secret local-demo --business-short-code 600984 --base-url http://$(HOST):$(PORT)
	@echo "Pay the demo paybill from another terminal: .venv/bin/python manage.py simulate_c2b --phone 0712345678 --amount 500 --reference LOAN-000101"
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

test: install ## Run the whole suite (on PostgreSQL + Redis when DATABASE_URL / REDIS_URL are set)
	$(BIN)/pytest

lint: install ## ruff check, ruff format --check and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: install ## Format and autofix with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

worker: install ## Start a Celery worker (needs REDIS_URL)
	$(BIN)/celery -A config worker --loglevel INFO

beat: install ## Start Celery beat, the periodic scheduler (needs REDIS_URL)
	$(BIN)/celery -A config beat --loglevel INFO

bench: install ## Benchmarks: M-Pesa load with /metrics scraped (needs PostgreSQL + Redis; flushes Redis db 14), loan import
	$(BIN)/python bench/payments.py --scrape
	$(BIN)/python bench/import_loans.py
