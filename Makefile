# Local and CI entry points. Every tool runs from .venv/bin explicitly, so no
# shell activation is needed and the system Python never leaks in.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
# Living inside the venv, the stamp disappears with it: deleting .venv is a
# full reinstall, editing a requirements file is a pip re-run.
STAMP := $(VENV)/.installed
REQS := requirements-dev.txt functions/collector/requirements.txt pyproject.toml

# Lambda-platform wheels of the function's requirements, fetched with the other
# dependencies at install time, so the tests' `sam build` runs without network.
WHEELHOUSE := .wheelhouse
WHEELHOUSE_STAMP := $(WHEELHOUSE)/.stamp

# prometheus-postgres-exporter: the custom-queries test compares the product's series with its
# series for the same queries file (and `make bench` with its speed).
APT_PACKAGES := postgresql-15 postgresql-contrib prometheus-pushgateway prometheus openssl redis-server prometheus-redis-exporter prometheus-postgres-exporter
BENCH_APT_PACKAGES := prometheus-postgres-exporter

# Empty: found at venv creation time (pyenv 3.12, pyenv's versions dir, PATH).
# The tests must run on the Lambda runtime's minor version, not on whatever
# python3 happens to be first on PATH (3.11 on these machines).
PYTHON312 ?=

.PHONY: help install system-packages test test-rules faults test-unit test-integration lint format demo bench clean \
	ca-bundle sam-build lint-template

help:
	@echo "make install   venv (Python 3.12) + dev requirements + Debian servers"
	@echo "make test      unit and integration tests against real local servers, alert rule tests"
	@echo "make faults    the fault matrix (fault x expected x observed) and config fuzzing"
	@echo "make lint      ruff check, ruff format --check, mypy"
	@echo "make demo      one real collection pass against local stand-ins"
	@echo "make bench     benchmark on local servers (a few minutes), writes bench/RESULTS.md"
	@echo "make clean     remove the venv, caches and build output"

install: system-packages $(STAMP) $(WHEELHOUSE_STAMP)

$(WHEELHOUSE_STAMP): functions/collector/requirements.txt $(STAMP)
	$(PY) -m pip download --disable-pip-version-check -q --platform manylinux2014_x86_64 \
		--implementation cp --python-version 3.12 --only-binary=:all: \
		-r functions/collector/requirements.txt -d $(WHEELHOUSE)
	@touch "$@"

# aws-sam-cli offline: no telemetry, and a version check dated in the future.
SAM_APP_DIR := $(CURDIR)/.aws-sam-cli
SAM := SAM_CLI_TELEMETRY=0 __SAM_CLI_APP_DIR=$(SAM_APP_DIR) $(VENV)/bin/sam
$(SAM_APP_DIR)/metadata.json:
	@mkdir -p $(SAM_APP_DIR)
	@echo '{"lastVersionCheck": "2099-01-01T00:00:00.000000"}' > "$@"

# AWS's RDS/Aurora/DocumentDB CA bundle for the layer; run on the deploying machine.
CA_BUNDLE_URL := https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem
ca-bundle:
	curl -fsSL --max-time 60 -o layers/ca-bundle/global-bundle.pem.tmp "$(CA_BUNDLE_URL)"
	grep -q -- "-----BEGIN CERTIFICATE-----" layers/ca-bundle/global-bundle.pem.tmp
	mv layers/ca-bundle/global-bundle.pem.tmp layers/ca-bundle/global-bundle.pem
	@echo "layers/ca-bundle/global-bundle.pem: $$(grep -c -- '-----BEGIN CERTIFICATE-----' layers/ca-bundle/global-bundle.pem) certificates"

# The deploy build (needs layers/ca-bundle/global-bundle.pem: make ca-bundle).
sam-build: install $(SAM_APP_DIR)/metadata.json
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(SAM) build --language-extensions

lint-template: install $(SAM_APP_DIR)/metadata.json
	$(VENV)/bin/cfn-lint template.yaml
	$(SAM) validate --lint --template-file template.yaml

# Checked on every run (a few dpkg-query calls); apt-get update only runs when
# something is actually missing, so a warm machine pays nothing.
system-packages:
	@missing=""; \
	for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q 'install ok installed' \
			|| missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		sudo=""; [ "$$(id -u)" -eq 0 ] || sudo="sudo"; \
		echo "installing Debian packages:$$missing"; \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq; \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(STAMP): $(REQS)
	@if [ ! -x "$(PY)" ]; then \
		py="$(PYTHON312)"; \
		if [ -z "$$py" ]; then \
			p="$$(pyenv prefix 3.12 2>/dev/null | head -n1 || true)"; \
			if [ -n "$$p" ] && [ -x "$$p/bin/python3.12" ]; then py="$$p/bin/python3.12"; fi; \
		fi; \
		if [ -z "$$py" ]; then \
			for c in /root/.pyenv/versions/3.12.*/bin/python3.12 "$$HOME"/.pyenv/versions/3.12.*/bin/python3.12; do \
				if [ -x "$$c" ]; then py="$$c"; break; fi; \
			done; \
		fi; \
		if [ -z "$$py" ]; then py="$$(command -v python3.12 || true)"; fi; \
		if [ -z "$$py" ]; then echo "Python 3.12 not found (pyenv install 3.12, or make PYTHON312=/path/to/python3.12)" >&2; exit 1; fi; \
		echo "creating $(VENV) with $$py"; \
		"$$py" -m venv "$(VENV)"; \
	fi
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-dev.txt
	$(PY) -m pip install --disable-pip-version-check -q --no-deps -e .
	@touch "$@"

# Parallel workers (pytest-xdist), each with its own session servers; a module's tests stay on
# one worker, longest modules first (tests/conftest.py). Most tests wait on servers and
# timeouts, so more workers than CPUs pays. The slowest 20 are listed at the end; .ci/run
# fails the suite past 10 minutes.
TEST_WORKERS ?= 4
PYTEST_PARALLEL := -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder --durations=20

test: install test-rules
	$(VENV)/bin/pytest $(PYTEST_PARALLEL) tests/unit tests/integration tests/faults

# Alert rules: syntax, and their unit tests (prometheus/tests/*.test.yml).
test-rules: system-packages
	promtool check rules prometheus/*.rules.yml
	promtool test rules prometheus/tests/*.test.yml

# The fault matrix alone (also part of `make test`): the table prints at the end.
faults: install
	$(VENV)/bin/pytest tests/faults

test-unit: install
	$(VENV)/bin/pytest tests/unit

test-integration: install
	$(VENV)/bin/pytest tests/integration

lint: install lint-template
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy functions/collector tests bench

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

demo: install
	$(PY) -m tests.standins.demo

bench: install
	@$(MAKE) --no-print-directory system-packages APT_PACKAGES="$(BENCH_APT_PACKAGES)"
	$(PY) -m bench.run

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .aws-sam build dist \
		.wheelhouse .aws-sam-cli \
		*.egg-info functions/collector/*.egg-info
	find functions tests -name __pycache__ -type d -prune -exec rm -rf {} +
