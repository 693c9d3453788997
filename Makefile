# Vahana — the two commands: `make demo` and `make test`. Everything else is below.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
BENCH_STAMP := $(VENV)/.bench-stamp
# Editable installs as a path in a .pth file: setuptools' default mode imports a finder in every
# interpreter's start, 20 ms of each command, worker and zygote start-up (measured: `python -c
# pass` 30 ms with it, 10 ms without).
EDITABLE := --config-settings editable_mode=compat

.PHONY: demo test test-unit test-integration test-k8s chart lint proto worker-pyz bench bench-full clean help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

demo: $(STAMP) ## run the example tasks on local workers (scheduler + workers + result table)
	$(BIN)/vahana run -f deploy/examples/hello.yaml

test: $(STAMP) ## run every test (unit + integration against real processes)
	$(BIN)/python -m pytest

test-unit: $(STAMP) ## run the unit tests only (seconds)
	$(BIN)/python -m pytest tests/unit

test-integration: $(STAMP) ## run the integration tests only
	$(BIN)/python -m pytest tests/integration

test-k8s: $(STAMP) ## run the operator tests on a real API server (needs KUBEBUILDER_ASSETS)
	$(BIN)/python -m pytest tests/k8s

lint: $(STAMP) ## ruff, mypy (all of vahana and the worker; strict on core and worker), import layers
	$(BIN)/ruff check operator worker tests bench scripts
	$(BIN)/ruff format --check operator worker tests bench scripts
	$(BIN)/mypy operator/vahana worker/vahana_worker
	$(BIN)/lint-imports

proto: $(STAMP) ## regenerate the gRPC stubs of both distributions from proto/
	$(BIN)/python scripts/gen_proto.py

chart: $(STAMP) ## copy crds/ into the chart; render deploy/manifests/ and docs/crds.md (needs helm)
	$(BIN)/python scripts/sync_chart.py

worker-pyz: $(STAMP) ## build dist/worker.pyz, the self-contained worker
	$(BIN)/python worker/build_pyz.py --output dist/worker.pyz

bench: $(BENCH_STAMP) ## benchmark (short), peers side by side: prints figures, writes bench/results.json
	$(BIN)/python -m bench.run

bench-full: $(BENCH_STAMP) ## benchmark (full)
	$(BIN)/python -m bench.run --full

# The peers (HyperQueue, Dask, Parsl) of the `bench` extra; without them their rows say skipped.
$(BENCH_STAMP): $(STAMP) operator/pyproject.toml
	$(BIN)/python -m pip install --quiet $(EDITABLE) -e 'operator[bench]' && touch $@ || \
		echo "the bench extra did not install: the peers it lacks are reported as skipped"

$(STAMP): operator/pyproject.toml worker/pyproject.toml requirements-dev.txt Makefile
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Vahana needs Python 3.11 or newer (found $$($(PYTHON) --version))"; exit 1; }
	@$(PYTHON) -m venv --help >/dev/null 2>&1 || \
		{ echo "python venv is missing: apt-get install python3-venv"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet $(EDITABLE) -e worker -e operator
	@touch $@

clean: ## remove the virtualenv and build output
	rm -rf $(VENV) dist build .pytest_cache
