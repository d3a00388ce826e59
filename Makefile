# The two commands of the README:
#   make demo  sets everything up, brings the sandbox up, seeds it and runs the migration
#   make test  sets everything up and runs every test
# Both are idempotent. Everything is installed by the project's own files:
# Python packages into .venv/, Debian packages with apt-get, Neo4j with Maven.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
ANSIBLE_PLAYBOOK := $(BIN)/ansible-playbook
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(BIN):$(PATH)
export PYTHONDONTWRITEBYTECODE := 1

# Size of the demo data set and whether it carries the catalogue of bad records.
DEMO_MEDIA_COUNT ?= 20000
DEMO_BAD_RECORDS ?= true

.PHONY: demo test venv sandbox sandbox-down sandbox-status seed migrate lint unit integration molecule clean

demo: seed migrate

test: lint unit sandbox integration molecule

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found"; exit 1; }
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV) || { \
	  apt-get update -qq && apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); }
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

sandbox: venv
	$(ANSIBLE_PLAYBOOK) playbooks/sandbox.yml

sandbox-down: venv
	$(ANSIBLE_PLAYBOOK) playbooks/sandbox.yml -e sandbox_state=down

sandbox-status: venv
	$(ANSIBLE_PLAYBOOK) playbooks/sandbox.yml -e sandbox_state=status

seed: sandbox
	$(ANSIBLE_PLAYBOOK) playbooks/seed.yml -e seed_media_count=$(DEMO_MEDIA_COUNT) \
	  -e seed_bad_records=$(DEMO_BAD_RECORDS) -e seed_replace_other_data=true

# The demo validates with a full scan (20,000 rows take seconds); the report lands in .sandbox/state/.
migrate: venv
	$(ANSIBLE_PLAYBOOK) run-migration.yml -e full_scan=true
	@echo "Report: .sandbox/state/migration-report.md"

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/yamllint --strict .
	$(BIN)/ansible-lint --offline
	@for module in library/*.py; do \
	  name=$$(basename $$module .py); \
	  $(BIN)/ansible-doc -M library -t module $$name >/dev/null || { echo "ansible-doc fails for $$name"; exit 1; }; \
	done; echo "ansible-doc: every module documents itself"

unit: venv
	$(BIN)/pytest tests/unit

integration: sandbox
	$(BIN)/pytest tests/integration

molecule: sandbox
	$(BIN)/molecule test --all

clean:
	rm -rf .pytest_cache .ruff_cache
