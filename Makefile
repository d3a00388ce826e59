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

.PHONY: demo test venv sandbox sandbox-down sandbox-status seed migrate lint unit integration molecule zero-downtime clean

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

# Load the engines serve during the demo: every write is checked afterwards in Neo4j and Milvus.
# (This 2-core sandbox's Neo4j answers about 50 vector searches/s at most; see docs/engine-modes.md.)
DEMO_WRITES_PER_SECOND ?= 20
DEMO_SEARCHES_PER_SECOND ?= 10
LOAD := $(ANSIBLE_PLAYBOOK) playbooks/engine-load.yml -e engine_load_writes_per_second=$(DEMO_WRITES_PER_SECOND) \
  -e engine_load_searches_per_second=$(DEMO_SEARCHES_PER_SECOND)

# The demo runs phases 1-8 while both engine instances serve a load, validates with a full scan
# (20,000 rows take seconds), then stops the load and checks every acknowledged write.
migrate: venv
	$(LOAD) -e engine_load_action=start
	$(ANSIBLE_PLAYBOOK) run-migration.yml -e full_scan=true || { $(LOAD) -e engine_load_action=stop; exit 1; }
	$(LOAD) -e engine_load_action=stop
	@echo "Report: .sandbox/state/migration-report.md; load: .sandbox/state/load/summary.json"

# The zero-downtime scenario alone (flips back and forth under 100 writes/s + 100 searches/s); `make molecule` runs it too.
zero-downtime: sandbox
	$(BIN)/molecule test -s zero_downtime

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
	$(BIN)/pytest tests/unit reference_engine/tests

integration: sandbox
	$(BIN)/pytest tests/integration --durations=25

molecule: sandbox
	@for scenario in sandbox preflight migrate_embeddings migrate_agentdb zero_downtime; do $(BIN)/molecule test -s $$scenario || exit 1; done

clean:
	rm -rf .pytest_cache .ruff_cache
