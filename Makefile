# Two commands on a fresh machine: `make synth` (every business unit, offline, with the security
# gates) and `make test` (lint, types, the whole suite). Everything installs into the repo itself.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_BOOTSTRAP ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The Airflow DAG's own environment (pipelines/requirements.txt): Airflow 3.0.6's pins cannot
# share .venv's resolve. Python 3.11 here; MWAA runs the DAG on 3.12.
PIPELINE_PYTHON_BOOTSTRAP ?= python3.11
PIPELINE_VENV := .venv-pipeline
PIPELINE_PY := $(PIPELINE_VENV)/bin/python
CDK := node_modules/.bin/cdk
PYTEST_ARGS ?=

export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PYTHONDONTWRITEBYTECODE := 1
# The app and the tests never need credentials or the network; make sure nothing asks for them.
export AWS_EC2_METADATA_DISABLED := true
export CDK_DISABLE_VERSION_CHECK := true
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1
export MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR := false

.PHONY: help install install-cdk pipeline-env synth validate new-bu replacements doctor test test-all \
        test-pipeline lint format typecheck mwaa-bundle bench-synth bench-train bench-gpu bench-dpo bench-contention bench-inference bench-prepare bfcl-data dashboard-picture push-training-image stage-hyperpod-chart \
        clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

# --- installation (stamp files make re-runs free) -------------------------------------------
# Each step says what it installs and how long it took (pip's own -q output is otherwise silent
# for minutes on a fresh machine).
$(VENV)/.stamp-cdk: requirements.txt constraints.txt
	@test -x $(PY) || $(PYTHON_BOOTSTRAP) -m venv $(VENV)
	@echo "install: synthesis packages (requirements.txt) into $(VENV), about 1 min on a fresh machine"
	@start=$$SECONDS; $(PY) -m pip install -q --disable-pip-version-check -r requirements.txt -c constraints.txt \
	    && echo "install: synthesis packages done in $$((SECONDS - start)) s"
	@touch $@

$(VENV)/.stamp-all: $(VENV)/.stamp-cdk requirements-ml.txt requirements-dev.txt constraints.txt
	@echo "install: training, inference and dev packages (CPU torch, transformers, mlflow, ...), a few minutes on a fresh machine"
	@start=$$SECONDS; $(PY) -m pip install -q --disable-pip-version-check -r requirements-ml.txt -r requirements-dev.txt -c constraints.txt \
	    && echo "install: training, inference and dev packages done in $$((SECONDS - start)) s"
	@touch $@

node_modules/.stamp: package.json package-lock.json
	@echo "install: the pinned CDK CLI (package.json) into node_modules"
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

install-cdk: $(VENV)/.stamp-cdk node_modules/.stamp ## Install what synthesis needs (no torch)
install: $(VENV)/.stamp-all node_modules/.stamp ## Install everything (CDK app, training, inference, dev tools)

$(PIPELINE_VENV)/.stamp: pipelines/requirements.txt pipelines/constraints.txt
	@test -x $(PIPELINE_PY) || $(PIPELINE_PYTHON_BOOTSTRAP) -m venv $(PIPELINE_VENV)
	@echo "install: Airflow 3.0.6 and the DAG's packages (pipelines/requirements.txt) into $(PIPELINE_VENV), about 1 min on a fresh machine"
	@start=$$SECONDS; $(PIPELINE_PY) -m pip install -q --disable-pip-version-check -r pipelines/requirements.txt -c pipelines/constraints.txt \
	    && echo "install: pipeline packages done in $$((SECONDS - start)) s"
	@touch $@

pipeline-env: $(PIPELINE_VENV)/.stamp ## Install the Airflow DAG's environment (.venv-pipeline: Airflow 3.0.6, providers, pytest)

# --- infrastructure --------------------------------------------------------------------------
synth: install-cdk ## Validate every config/*.yaml, synthesize every BU (or BU=name[,name]) offline, run nag + cfn-lint, print a summary
	$(PY) scripts/synth.py $(if $(BU),--bu "$(BU)")

validate: install-cdk ## Validate the business-unit configs (FILES=... to pick some)
	$(PY) -m config validate $(FILES)

new-bu: install-cdk ## Write config/$(NAME).yaml for a new business unit (FROM=existing ACCOUNT=id optional)
	@test -n "$(NAME)" || { echo "usage: make new-bu NAME=name [FROM=existing] [ACCOUNT=123456789012]"; exit 2; }
	$(PY) -m config new $(NAME) $(if $(FROM),--from $(FROM)) $(if $(ACCOUNT),--account $(ACCOUNT))

BASE ?= origin/main
replacements: install-cdk ## Stateful resources this change would remove or replace vs BASE (default origin/main)
	$(PY) -m scripts.replacements --base $(BASE)

# The one target that needs credentials: the caller's own (profile, SSO, or an instance role,
# hence the metadata service switched back on) and kubeconfig (`aws eks update-kubeconfig`).
doctor: install ## After a deploy: check BU=name's stacks, cluster, quotas, Studio, MLflow, endpoints (read-only)
	@test -n "$(BU)" || { echo "usage: make doctor BU=name [REGION=us-east-1] [KUBECONFIG_FILE=path] [CONTEXT=name] [SKIP_SMOKE=1]"; exit 2; }
	AWS_EC2_METADATA_DISABLED=false $(PY) -m tools.doctor --bu $(BU) $(if $(REGION),--region $(REGION)) \
	    $(if $(KUBECONFIG_FILE),--kubeconfig $(KUBECONFIG_FILE)) $(if $(CONTEXT),--context $(CONTEXT)) \
	    $(if $(SKIP_SMOKE),--skip-endpoint-smoke)

# --- images ---------------------------------------------------------------------------------
push-training-image: $(VENV)/.stamp-cdk ## Build training/Dockerfile, push it to BU=name's ECR repository tagged with the git SHA (REGION=, TAG= optional)
	@test -n "$(BU)" || { echo "usage: make push-training-image BU=name [REGION=us-east-1] [TAG=sha]"; exit 2; }
	$(PY) scripts/push_training_image.py --bu $(BU) $(if $(REGION),--region $(REGION)) $(if $(TAG),--tag $(TAG))

stage-hyperpod-chart: install-cdk ## Once, with internet: build, check and push the pinned chart and mirror its images into BU=name's ECR (VERIFY=1 checks)
	@test -n "$(BU)" || { echo "usage: make stage-hyperpod-chart BU=name [VERIFY=1] [DRY_RUN=1]"; exit 2; }
	$(PY) -m scripts.stage_hyperpod_chart --bu $(BU) $(if $(VERIFY),--verify) $(if $(DRY_RUN),--dry-run)

# Network: pip downloads the wheels from PyPI (MWAA's platform, Python 3.12, MWAA's constraints).
mwaa-bundle: install-cdk ## With internet: BU=name's MWAA upload (requirements.txt, plugins.zip of wheels, dags/) in build/mwaa/<bu>/
	@test -n "$(BU)" || { echo "usage: make mwaa-bundle BU=name"; exit 2; }
	$(PY) -m scripts.mwaa_bundle --bu $(BU)

# --- quality gate ----------------------------------------------------------------------------
lint: install ## ruff lint + format check + the import contracts (pyproject.toml, [tool.importlinter])
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports --no-cache

format: install ## Apply ruff's fixes and formatting
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

typecheck: install ## mypy over the product code
	$(PY) -m mypy

test: lint typecheck ## Lint, type-check and run the default test suite (slow tests excluded)
	$(PY) -m pytest $(PYTEST_ARGS)

test-all: install ## Every test, the slow ones included
	$(PY) -m pytest -m "" $(PYTEST_ARGS)

# The DAG's tests run in .venv-pipeline, and its training steps in .venv (PIPELINE_ML_PYTHON),
# each against its own pins. --confcutdir: tests/conftest.py loads the CDK harness, which
# .venv-pipeline does not have; tests/pipeline/conftest.py sets Airflow up (AIRFLOW_HOME here
# is a fresh folder, removed afterwards).
test-pipeline: install pipeline-env ## The Airflow DAG's tests (tests/pipeline: dag.test() on sqlite, offline)
	@home=$$(mktemp -d) && trap 'rm -rf "$$home"' EXIT && set -x && \
	    AIRFLOW_HOME=$$home PIPELINE_ML_PYTHON=$(CURDIR)/$(PY) \
	    $(PIPELINE_PY) -m pytest tests/pipeline -p no:cacheprovider --confcutdir=tests/pipeline $(PYTEST_ARGS)

# --- benchmarks (print a table; timings never live in tests) -------------------------------
bench-synth: install ## cdk synth time and memory: empty app floor vs this app with 1, 3, 10 and 20 BUs, and a one-BU synth
	$(PY) -m benchmarks.synth

bench-train: install ## This trainer vs TRL SFTTrainer: ablation ladder, data mixes, utilisation (~35 min)
	$(PY) -m benchmarks.train

# Python packages only (no npm): a bare GPU machine needs python3 and the pinned wheels, whose
# Linux torch from PyPI is a CUDA build (training/README.md: drivers, optional flash-attn, liger).
bench-gpu: $(VENV)/.stamp-all ## On one CUDA GPU: this trainer vs TRL SFTTrainer at Qwen3-4B's shape, LoRA and full, bf16 (<10 min, runs/bench-gpu.md)
	$(PY) -m benchmarks.gpu

bench-dpo: install ## This trainer's DPO vs TRL DPOTrainer (LoRA, Qwen3 vocabulary), gains split by ablation (~15 min)
	$(PY) -m benchmarks.dpo

bench-contention: install ## The tiny training run idle and beside a busy process (thread defaults vs before)
	$(PY) -m benchmarks.contention

bench-inference: install ## Completion parser vs a hand-rolled jsonschema baseline and transformers' parse_response
	$(PY) -m benchmarks.inference

bench-prepare: install ## training.prepare vs TRL SFTTrainer's dataset preparation: 4k/16k/64k conversations, 1 and 2 workers (~10 min; SIZES=4000,16000 to choose)
	$(PY) -m benchmarks.prepare $(if $(SIZES),--sizes $(SIZES))

# Network once: BFCL's data from the pinned bfcl-eval wheel (version and sha256 in
# training/bfcl_data.py), downloaded with --no-deps and never installed; needs only pip.
bfcl-data: $(VENV)/.stamp-cdk ## BFCL's pinned data (bfcl_eval/data only) into .cache/bfcl/<version>/ for python -m training.bfcl
	$(PY) -m training.bfcl_data

dashboard-picture: install ## Redraw docs/dashboard.png from credit's dashboard body (the README shows it)
	$(PY) tools/render_dashboard.py --config config/credit.yaml --out docs/dashboard.png

clean: ## Remove build outputs (keeps .venv, .venv-pipeline and node_modules)
	rm -rf cdk.out build .mypy_cache .ruff_cache .pytest_cache
