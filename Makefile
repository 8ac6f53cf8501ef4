# Centinela: `make run` serves the app, `make test` runs every test. Nothing else to install.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8501
HOST   ?= 127.0.0.1
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test airflow-venv test-unit test-pages test-e2e test-fast install install-dev chromium idp image-tools java wheelhouse image lint bench bench-detectors bench-quality bench-pages bench-investigation bench-learning bench-models bench-live bench-rules bench-path bench-scale bench-spark bench-kafka bench-webhooks bench-postgres postgres clean

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt requirements-spark.txt
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt -r requirements-spark.txt
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

## Serve the app and its HTTP API (/api, /api/docs, /metrics) at http://$(HOST):$(PORT) from one process, on
## $${CENTINELA_DB:-./centinela.duckdb}; demo data on first start. HOST=0.0.0.0 to serve other machines.
## On a database with no user yet, it first asks for the admin's password (or reads $$CENTINELA_ADMIN_PASSWORD).
run: install
	$(BIN)/centinela users first-admin
	$(BIN)/uvicorn serve:app --host $(HOST) --port $(PORT)

## Install test dependencies (Debian's chromium, buildah and debootstrap, a Java 17 runtime for Spark, the
## test OpenID provider, if missing), then run the whole suite, the slow Docker-image and Spark tests included.
test: install-dev chromium idp image-tools java postgres airflow-venv
	$(BIN)/python -m pytest

## Everything but the tests marked slow (the Docker image built and run with buildah, Spark in local mode).
test-fast: install-dev chromium idp postgres
	$(BIN)/python -m pytest -m "not slow"

## The fast, in-process tests alone (units and actions; about a third of the suite's time).
test-unit: install-dev
	$(BIN)/python -m pytest tests/unit

## Page logic through Streamlit's AppTest.
test-pages: install-dev
	$(BIN)/python -m pytest tests/pages

## End to end: the command line as a process, a real `streamlit run` in Chromium, kill tests, single sign-on.
test-e2e: install-dev chromium idp image-tools postgres airflow-venv
	$(BIN)/python -m pytest tests/e2e

## What the image test builds and runs the Dockerfile with, without a Docker engine: Debian's buildah
## (`--isolation chroot`) and debootstrap (a stand-in for the Dockerfile's base image, which cannot be pulled here).
image-tools:
	@command -v buildah >/dev/null && command -v debootstrap >/dev/null || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq buildah debootstrap; }

## Wheels of every runtime requirement (and of what builds Centinela's own) into $(WHEELHOUSE), for an
## image built where no registry is reachable: `docker build --build-arg PIP_NO_INDEX=1 .`
WHEELHOUSE ?= wheelhouse
wheelhouse: install
	$(BIN)/python -m pip download --quiet --only-binary=:all: --python-version 3.11 --dest $(WHEELHOUSE) -r requirements.txt "setuptools>=68"

## The Docker image with Docker, Podman or buildah, whichever runs here (Podman and buildah write the
## Docker format, which keeps the HEALTHCHECK). Needs a registry, or `make wheelhouse` and PIP_NO_INDEX=1.
image:
	@args="-t centinela $${PIP_NO_INDEX:+--build-arg PIP_NO_INDEX=1} ."; \
	if command -v docker >/dev/null && docker info >/dev/null 2>&1; then set -x; docker build $$args; \
	elif command -v podman >/dev/null; then set -x; podman build --format docker $$args; \
	elif command -v buildah >/dev/null; then set -x; buildah build --isolation chroot --format docker $$args; \
	else echo "no Docker engine, podman or buildah here (make image-tools installs buildah)" >&2; exit 1; fi

## Java 17 or later for Spark's local mode (tests/spark), from Debian where missing or older.
java:
	@java -version 2>&1 | grep -Eq 'version "(1[7-9]|[2-9][0-9])' || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq default-jre-headless; }

## Apache Airflow in its own virtual environment ($(AIRFLOW_VENV)), for tests/e2e/test_airflow_dags.py:
## `airflow dags test` on the DAGs in deploy/airflow (pinned in deploy/airflow/requirements.txt).
AIRFLOW_VENV := .venv-airflow
airflow-venv: $(AIRFLOW_VENV)/.installed

$(AIRFLOW_VENV)/.installed: deploy/airflow/requirements.txt deploy/airflow/constraints.txt
	test -x $(AIRFLOW_VENV)/bin/python || $(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet -r deploy/airflow/requirements.txt -c deploy/airflow/constraints.txt
	touch $@

## Debian's PostgreSQL server for tests/e2e/test_database_sources.py (a throwaway cluster on loopback), if missing.
postgres:
	@ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql; }

chromium:
	@test -x /usr/bin/chromium || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; }

## The OpenID Connect provider the single sign-on test signs in through: npm's oidc-provider, at the
## versions tests/idp/package-lock.json pins (Node.js 20 or later; Debian's nodejs and npm if node is missing).
IDP := tests/idp
idp: $(IDP)/node_modules/.installed

$(IDP)/node_modules/.installed: $(IDP)/package.json $(IDP)/package-lock.json
	@command -v node >/dev/null && command -v npm >/dev/null || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq nodejs npm; }
	@node -e 'process.exit(Number(process.versions.node.split(".")[0]) < 20 ? 1 : 0)' || { echo "tests/idp needs Node.js 20 or later; this is $$(node --version)" >&2; exit 1; }
	npm ci --prefix $(IDP) --no-audit --no-fund --loglevel=error
	touch $@

lint: install-dev
	$(BIN)/ruff check .

## Print the foundation benchmark figures (1M generated transactions).
bench: install
	$(BIN)/python -m benchmarks.bench_foundation

## Fit and score time per detector at 1M rows, and the latency of a threshold move.
bench-detectors: install
	$(BIN)/python -m benchmarks.bench_detectors

## Average precision and recall per fraud scenario of every detector on the demo data.
bench-quality: install
	$(BIN)/python -m benchmarks.bench_quality

## Queue query, SHAP per case and global importance at 1M rows; attribution accuracy per detector.
bench-investigation: install
	$(BIN)/python -m benchmarks.bench_investigation

## Label efficiency: simulated analysts label the queue daily, models retrain (about 5 min).
bench-learning: install
	$(BIN)/python -m benchmarks.bench_learning --plot docs/label-efficiency.png

## KPI queries, drift, registry and retraining from labels at 1M rows.
bench-models: install
	$(BIN)/python -m benchmarks.bench_models

## Time the pages on 1M rows (ROWS=10000000 for 10M) in headless Chromium; at 1M saves docs/screenshots/*-1m.png.
bench-pages: install-dev chromium
	$(BIN)/python -m benchmarks.bench_pages $(if $(ROWS),--rows $(ROWS))

## Live scoring at 1M stored transactions: single-transaction latency, batch throughput, the queue under load.
bench-live: install-dev chromium
	$(BIN)/python -m benchmarks.bench_live

## Rules at 1M rows: the queue with 50 active rules and two lists, a backtest per rule.
bench-rules: install
	$(BIN)/python -m benchmarks.bench_rules

## The whole path (import, features, default fit and score) beside the bare libraries on a 1.75M-row CSV.
bench-path: install
	$(BIN)/python -m benchmarks.bench_path

## Ten million rows: generate, export, import CSV and Parquet, fit, then every page in Chromium, with peak memory.
bench-scale: install-dev chromium
	$(BIN)/python -m benchmarks.bench_scale

## Spark local mode beside DuckDB on the same features and scores, at 1M and 10M rows (ROWS=N for one size).
bench-spark: install-dev java
	$(BIN)/python -m benchmarks.bench_spark $(if $(ROWS),--rows $(ROWS))

## Kafka in and out at 1M stored transactions: sustained tx/s and produce-to-decision latency, then capacity.
bench-kafka: install-dev
	$(BIN)/python -m benchmarks.bench_kafka $(if $(ROWS),--rows $(ROWS))

## Webhooks through the server: a live alert's decision to its signed event at a loopback receiver, and a backlog drained.
bench-webhooks: install-dev
	$(BIN)/python -m benchmarks.bench_webhooks $(if $(ROWS),--rows $(ROWS))

## A sync of 200,000 rows from a local PostgreSQL into a dataset, then incremental syncs (see Integrations).
bench-postgres: install-dev postgres
	OMP_NUM_THREADS=2 $(BIN)/python -m benchmarks.bench_postgres_sync $(if $(ROWS),--rows $(ROWS))

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
