# The front door. A newcomer needs Python 3.11+ and make; everything else installs itself.
#
#   make run                 the local stack on http://127.0.0.1:3000 (make run PORT=3001)
#   make test                every check CI runs (.ci/run is exactly this), failing fast
#   make help                the other targets
#
# Recipes run in bash with -euo pipefail: a failing command anywhere in a pipeline fails the step.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
.NOTPARALLEL:
MAKEFLAGS += --no-builtin-rules --no-print-directory

PORT ?= 3000
FN ?= ApiFunction
EVENT ?= events/api/get_openapi.json
# Tests run on 2 workers (pytest-xdist): every stack-backed test starts its own stack on a free port.
PYTEST_WORKERS ?= 2
PYTEST_ARGS ?=

VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# sam build needs `python3.12` (the template's runtime) on PATH. The link lives one folder below
# .venv/ on purpose: next to .venv/pyvenv.cfg, Python 3.12 would take itself for the 3.11 venv.
PY312_BIN := $(VENV)/py312/bin
PY312 := $(PY312_BIN)/python3.12
TEMPLATE := infra/template.yaml
BUILD_DIR := .aws-sam/build
SAM := SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=us-east-1 $(VENV)/bin/sam
# pip prints one such warning per package for index folders that do not exist on this machine.
PIP_NOISE := is ignored: it is neither a file nor a directory
PIP := $(PY) -m pip --disable-pip-version-check
# checkov has a venv of its own inside .venv (so ignored, excluded and cleaned with it): no
# checkov release installs beside our pins (pyproject.toml, [dependency-groups] tools, says why).
TOOLS := $(VENV)/tools
TOOLS_STAMP := $(TOOLS)/.installed
# Offline and quiet: no version check against PyPI, no download from the vendor's platform
# (--skip-download); the rest of the settings (file, framework, output) are in .checkov.yaml.
CHECKOV := CKV_SKIP_PACKAGE_UPDATE_CHECK=true $(TOOLS)/bin/checkov --config-file .checkov.yaml

# $(call step,label,command): a banner, the command, and how long it took.
define step
	@printf '\n==> %s\n' '$(1)'; t0=$$(date +%s); $(2); printf -- '--> ok: %s (%ss)\n' '$(1)' $$(( $$(date +%s) - t0 ))
endef

.PHONY: help
help:
	@echo "make run      start the local stack (PORT=$(PORT)); demo key and URLs in .local/stack.json"
	@echo "make test     every check: lint, pytest, cfn-lint, sam validate, sam build, built smoke test"
	@echo "make lint     ruff check, ruff format --check, cfn-lint, sam validate --lint, checkov"
	@echo "make pytest   unit, integration and end-to-end tests (PYTEST_ARGS=... to pass more)"
	@echo "make build    sam build into $(BUILD_DIR) (needs a python3.12: scripts/find-python.sh)"
	@echo "make built    run every built function on its sample events (after make build)"
	@echo "make invoke   run one built function on one event: make invoke FN=$(FN) EVENT=$(EVENT)"
	@echo "make bench    cold start and sizes, ledger cost, nightly burn cost, reports and reconciliation cost, API throughput, simulator speed (docs/PERFORMANCE.md)"
	@echo "make format   ruff check --fix, then ruff format"
	@echo "make clean    build outputs and caches; make distclean also removes .venv and .local"

# ------------------------------------------------------------------------------------ setup

.PHONY: .venv
.venv: $(STAMP)

# Re-runs when pyproject.toml changes, and whenever .venv's python does not run (a .venv that was
# moved, or whose base interpreter was removed or upgraded): such a .venv is rebuilt from scratch.
ifneq ($(shell $(PY) -c 'import sys; print(sys.version_info >= (3, 11))' 2>/dev/null),True)
$(STAMP): FORCE
endif
.PHONY: FORCE
FORCE:

$(STAMP): pyproject.toml
	@if [ -d $(VENV) ] && ! $(PY) -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then \
		echo "$(VENV) is stale (its python does not run or is older than 3.11): recreating it"; \
		rm -rf $(VENV); \
	fi
	@if [ ! -e $(PY) ]; then \
		base="$$(scripts/find-python.sh 3.11+)"; \
		echo "creating $(VENV) with $$base"; \
		"$$base" -m venv $(VENV); \
	fi
	@echo "installing the project and its dev tools into $(VENV) (pip install -e '.[dev]')"
	@$(PIP) install -q --upgrade pip 2>&1 | { grep -v "$(PIP_NOISE)" || true; }
	@$(PIP) install -q -e '.[dev]' 2>&1 | { grep -v "$(PIP_NOISE)" || true; }
	@touch $@

$(TOOLS_STAMP): pyproject.toml | $(STAMP)
	@[ -x $(TOOLS)/bin/python ] || $(PY) -m venv $(TOOLS)
	@echo "installing the lint tools into $(TOOLS) (pip install --group tools)"
	@$(TOOLS)/bin/python -m pip --disable-pip-version-check install -q --upgrade pip 2>&1 | { grep -v "$(PIP_NOISE)" || true; }
	@$(TOOLS)/bin/python -m pip --disable-pip-version-check install -q --group tools 2>&1 | { grep -v "$(PIP_NOISE)" || true; }
	@touch $@

$(PY312): | $(STAMP)
	@py="$$(scripts/find-python.sh 3.12)"; \
	mkdir -p $(PY312_BIN); \
	ln -sfn "$$py" $@; \
	echo "sam build will use $$py (linked as $@)"

# ------------------------------------------------------------------------------------ run

.PHONY: run
run: $(STAMP)
	$(PY) -m local.stack --port $(PORT)

# ------------------------------------------------------------------------------------ checks

.PHONY: test
test: lint chromium pytest build built
	@printf '\nmake test: every check passed\n'

# The outbox page's browser test (tests/e2e/test_outbox_http.py) runs Debian's chromium. Installed
# here when missing and running as root (CI: about 40 s, once per machine); otherwise it says how.
CHROMIUM := /usr/bin/chromium
.PHONY: chromium
chromium:
	@if [ -x $(CHROMIUM) ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's chromium for the outbox page's browser test (apt-get)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		echo "chromium is missing and this is not root: run 'sudo apt-get install chromium' (Debian)," \
			"or the outbox page's browser test is skipped"; \
	fi

.PHONY: lint
lint: $(STAMP) $(TOOLS_STAMP)
	$(call step,ruff check,$(VENV)/bin/ruff check .)
	$(call step,ruff format --check,$(VENV)/bin/ruff format --check .)
	$(call step,cfn-lint,$(VENV)/bin/cfn-lint $(TEMPLATE))
	$(call step,sam validate --lint,$(SAM) validate --lint -t $(TEMPLATE))
	$(call step,checkov (skips and reasons: docs/SECURITY.md),$(CHECKOV))

.PHONY: pytest
pytest: $(STAMP)
	$(call step,pytest (unit / integration / e2e),LOYALTY_REQUIRE_CHROMIUM=$$([ -x $(CHROMIUM) ] && echo 1 || true) \
		$(PY) -m pytest -m "not built" -n $(PYTEST_WORKERS) $(PYTEST_ARGS) tests)

.PHONY: build
build: $(STAMP) $(PY312)
	$(call step,sam build,PATH="$(CURDIR)/$(PY312_BIN):$$PATH" $(SAM) build --template-file $(TEMPLATE) \
		--build-dir $(BUILD_DIR) --cached --cache-dir .aws-sam/cache)

# The built smoke test fails (instead of skipping) when the build is missing.
.PHONY: built
built: $(STAMP) $(PY312)
	$(call step,pytest -m built (built artifacts),LOYALTY_REQUIRE_BUILD=1 $(PY) -m pytest -m built $(PYTEST_ARGS) tests/built)

.PHONY: format
format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# ------------------------------------------------------------------------------------ tools

.PHONY: invoke
invoke: build
	$(PY) -m scripts.invoke $(FN) $(EVENT)

.PHONY: bench
bench: build
	$(PY) -m bench.coldstart
	$(PY) -m bench.ledger_cost
	$(PY) -m bench.burn_cost
	$(PY) -m bench.reconcile_cost
	$(PY) -m bench.api_throughput
	$(PY) -m bench.simulate

.PHONY: clean
clean:
	rm -rf .aws-sam .pytest_cache .ruff_cache .hypothesis
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -exec rm -rf {} +

.PHONY: distclean
distclean: clean
	rm -rf $(VENV) .local
