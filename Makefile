# videojob-operator: every task a person does, one target each. `make help` lists them.
SHELL := /usr/bin/env bash
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
TESTENV := .testenv
IMG_OPERATOR ?= videojob-operator:dev
IMG_TRANSCODER ?= videojob-transcoder:dev

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: deps
deps: ## Install the Debian packages the demo and tests need (as root; otherwise name them and stop).
	@hack/install-deps.sh

$(PY): pyproject.toml | deps
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,stt,stt-model,cli]'
	@touch $(PY)

.PHONY: venv
venv: $(PY) ## Create .venv with the package and its dev tools installed.

.PHONY: chart-docs
chart-docs: $(PY) ## Generate the chart's README (its values table) from the comments of values.yaml.
	$(PY) hack/chart_readme.py

.PHONY: crds
crds: $(PY) ## Generate crds/, the chart's CRD template and docs/api.md from the API models.
	$(PY) -m videojob.api.generate

.PHONY: fmt
fmt: $(PY) ## Format the code with ruff.
	$(VENV)/bin/ruff format operator devkit tests hack bench
	$(VENV)/bin/ruff check --fix operator devkit tests hack bench

.PHONY: lint
lint: $(PY) ## Lint and format check (ruff), type-check (mypy) and check the import contracts between layers (lint-imports).
	$(VENV)/bin/ruff check operator devkit tests hack bench
	$(VENV)/bin/ruff format --check operator devkit tests hack bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

.PHONY: test
test: $(PY) tools images ## Run every test: unit, integration (real cluster, MinIO, FFmpeg) and end to end (Helm-installed operator).
	$(PY) -m pytest -q -ra $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: $(PY) ## Run the unit tests only (no environment needed).
	$(PY) -m pytest -q tests/unit $(PYTEST_ARGS)

##@ Local environment

.PHONY: tools
tools: deps ## Build etcd, Kubernetes (control plane, kubelet, kube-proxy), MinIO and helm from Go modules (cached per machine).
	hack/build-tools.sh

.PHONY: testenv-up
testenv-up: $(PY) tools images ## Start the local cluster (control plane, 2 kubelet+containerd nodes, kube-proxy) and MinIO; writes .testenv/env.
	$(PY) hack/testenv.py up

.PHONY: testenv-down
testenv-down: $(PY) ## Stop the local environment and remove its data.
	$(PY) hack/testenv.py down

.PHONY: run
run: testenv-up ## Install the CRD and PriorityClasses, then run the operator in the foreground on the local environment.
	source $(TESTENV)/env && kubectl apply --server-side -f crds/ && \
	  helm template videojob charts/videojob-operator --set fullnameOverride=videojob \
	    --show-only templates/priorityclasses.yaml | kubectl apply --server-side -f - && \
	  echo "S3 credentials: each namespace needs a Secret videojob-s3 (see README); the demo makes one in videojob-demo" && \
	  $(VENV)/bin/videojob-operator

.PHONY: chaos
chaos: $(PY) tools images ## Faults on the local cluster while VideoJobs run (operator, node, MinIO, API server, etcd, tenants, forgeries); prints the table.
	VIDEOJOB_CHAOS=full $(PY) -m pytest -q -ra tests/e2e/test_chaos.py

.PHONY: demo
demo: testenv-up ## Install the chart on the local cluster, run a VideoJob end to end and list its artifacts.
	source $(TESTENV)/env && $(PY) hack/demo.py

##@ Build

.PHONY: images
images: deps ## Build the operator, transcoder and pause images here (Docker, no registry) and export them to .testenv/images.
	hack/build-images.sh

.PHONY: krew
krew: $(PY) ## Build the krew archive of `kubectl videojob` (dist/) and write its sha256 into plugins/krew/videojob.yaml.
	$(PY) hack/krew.py

.PHONY: docker-build
docker-build: ## Build the operator and transcoder images from debian:bookworm-slim (a Docker engine with registry access).
	DOCKER_BUILDKIT=1 docker build -t $(IMG_OPERATOR) .
	DOCKER_BUILDKIT=1 docker build -t $(IMG_TRANSCODER) -f transcoder-image/Dockerfile .

##@ Deployment

.PHONY: kind-up
kind-up: docker-build ## Create a kind cluster and load the images (needs Docker and kind).
	kind create cluster --name videojob
	kind load docker-image --name videojob $(IMG_OPERATOR) $(IMG_TRANSCODER)

.PHONY: install
install: ## Install the CRD into the current kubectl context.
	kubectl apply --server-side -f crds/

.PHONY: deploy
deploy: ## Install (or upgrade) the Helm chart, the CRD included, into the current kubectl context, with the images of docker-build.
	helm upgrade --install videojob-operator charts/videojob-operator -n videojob-system --create-namespace --wait \
	  --set image.repository=$(firstword $(subst :, ,$(IMG_OPERATOR))),image.tag=$(lastword $(subst :, ,$(IMG_OPERATOR))) \
	  --set transcoder.image.repository=$(firstword $(subst :, ,$(IMG_TRANSCODER))),transcoder.image.tag=$(lastword $(subst :, ,$(IMG_TRANSCODER)))
