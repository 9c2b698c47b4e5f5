# Thin wrapper: every target calls the one CLI (python -m scripts.cli) inside the project's pinned virtualenv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum requirements.lock pyproject.toml | cksum | cut -d' ' -f1)
CLI := $(BIN)/python -m scripts.cli

VARIANT ?= contextvar_asgi
USERS ?=
DURATION ?=
SCENARIO ?=
SERVER ?=
FRONT ?=
MODE ?=
REQUESTS ?=
APP ?=
ARGS ?=

.PHONY: setup bench test lint verify load sweep matrix report readme versions probe soak fuzz clean variant

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@# The package holds only ctxbench/ (what a wheel installs); the suite's folders (apps, scripts, ...) are imported
	@# from the clone's root, from any directory and by pyperf's and locust's workers alike: a .pth puts it on the path.
	$(BIN)/python -c "import pathlib, sysconfig; pathlib.Path(sysconfig.get_paths()['purelib'], 'ctxbench-clone.pth').write_text('$(CURDIR)\n')"
	rm -f $(VENV)/.installed-*
	touch $@

setup: $(STAMP)

# The main job: the conformance gate (= verify), microbenchmarks, the matrix, then the report from all raw results.
bench: setup
	$(CLI) bench $(if $(MODE),--mode $(MODE))
	$(CLI) matrix
	$(CLI) report

# .ci/proxies installs nginx and HAProxy for the front tests when missing and it can (root + apt); else they skip.
test: setup
	-@.ci/proxies
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

verify: setup
	$(CLI) verify

load: setup
	$(CLI) load --variant $(VARIANT) $(if $(USERS),--users $(USERS)) $(if $(DURATION),--duration $(DURATION)) \
		$(if $(SCENARIO),--scenario $(SCENARIO)) $(if $(SERVER),--server $(SERVER)) $(if $(FRONT),--front $(FRONT))

sweep: setup
	$(CLI) sweep $(if $(MODE),--mode $(MODE))

matrix: setup
	$(CLI) matrix

# One variant's whole row (gate, leak hunt, paired bench, instruction count), merged, then the report.
variant: setup
	$(CLI) variant $(VARIANT) $(ARGS)

# Which versions leak: every stack under stacks/ in its own virtualenv (cached by its lock's hash under .venv-stacks/).
versions: setup
	$(CLI) versions $(ARGS)

report: setup
	$(CLI) report

readme: setup
	$(CLI) readme

# Is my app affected? make probe APP=module:app ARGS="--python ../svc/.venv/bin/python --app-dir ../svc"
# make itself exits only 0 or 2, so the probe's own code (0 clean, 1 stale, 2 usage, 3 inconclusive) is printed;
# CI that branches on it runs `ctxbench probe ...` directly (the installed tool needs no clone: README).
probe: setup
	@$(CLI) probe $(APP) $(ARGS); code=$$?; \
	if [ $$code -ne 0 ]; then echo "make probe: ctxbench probe exited $$code (run .venv/bin/ctxbench probe for it)" >&2; fi; \
	exit $$code

# The soak: 1,000,000 validated requests (REQUESTS=... to lower it) on the approaches the report calls correct.
soak: setup
	$(CLI) soak $(if $(REQUESTS),--requests $(REQUESTS))

# Exploration: the property tests with the long hypothesis profile, fresh random cases (10,000 header values instead of
# CI's 1,000 fixed ones; ten times the CLI's). `make test` is derandomized and never explores: a case found here is
# added to its property as an explicit @example, which every CI run then replays.
fuzz: setup
	CTXBENCH_HYPOTHESIS_PROFILE=long $(BIN)/python -m pytest tests/test_bad_input.py tests/test_cli_usage.py \
		-k "any_header_values or unknown_name or out_of_range" \
		-p no:cacheprovider --hypothesis-show-statistics --timeout 3600

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
