# Two commands for a fresh machine: `make demo` and `make test`. Both create or update .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STATE_DIR ?= .sovereign
# pytest-timeout guards single tests; the whole suite must stay under 20 minutes on 2 cores.
PYTEST_ARGS ?=
# The trace viewer `sovereign up` starts: Phoenix in a venv of its own (~850 MB; its pins would fight Ray's).
VIEWER_VENV := .venv-viewer
PHOENIX_VERSION ?= 20.26.1

.PHONY: install viewer demo test test-unit faults security lint typecheck crds bench bench-policy bench-policy-verify bench-serving bench-serving-scale profile-gateway bench-audit bench-ingestion bench-retrieval bench-control-plane bench-suspension soak down clean

install: $(VENV)/.installed

# The platform with its [dev] extra (the tests' tools) and, beside it, the devstack: its own distribution
# (devstack/pyproject.toml), which adds `sovereign up/down/status`, `vault` and `model` to the CLI.
$(VENV)/.installed: pyproject.toml setup.py devstack/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv
	# uv (PyPI) resolves and installs the same packages as pip in seconds rather than minutes. It does not
	# read pip's configuration: the local wheel folders pip is told of (find-links) are passed on. Bytecode is
	# compiled at install, as pip does: with PYTHONDONTWRITEBYTECODE set, every process (each Ray worker) would
	# otherwise compile torch, transformers and Ray from source at every start.
	links="$$($(BIN)/python -m pip config get global.find-links 2>/dev/null || true) $${PIP_FIND_LINKS:-}"; \
	  args=""; for link in $$links; do args="$$args --find-links $$link"; done; \
	  $(BIN)/uv pip install --python $(BIN)/python --quiet --compile-bytecode $$args -e '.[dev]' -e ./devstack
	touch $@

viewer: $(VIEWER_VENV)/.installed-$(PHOENIX_VERSION)

$(VIEWER_VENV)/.installed-$(PHOENIX_VERSION):
	test -x $(VIEWER_VENV)/bin/python || $(PYTHON) -m venv $(VIEWER_VENV)
	$(VIEWER_VENV)/bin/python -m pip install --quiet 'arize-phoenix==$(PHOENIX_VERSION)'
	touch $@

demo: install viewer
	$(BIN)/sovereign up --state-dir $(STATE_DIR)

test: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy
	$(BIN)/sovereign crds generate --check
	$(BIN)/python -m pytest --durations=15 -m "not faults" $(PYTEST_ARGS); code=$$?; \
	  if [ $$code -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$code

# The inner loop: every test that starts no process (marker `process`, tests/fixtures/processes.py), in
# under two minutes; such a test that tries to start one fails.
test-unit: install
	$(BIN)/python -m pytest -m "not process" -p no:cacheprovider $(PYTEST_ARGS); code=$$?; \
	  if [ $$code -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$code

# The fault cases kept out of `make test` for their time (marker `faults`): Vault sealed, restarted and
# unreachable (under the operator, the gateway, the retriever, the CLI), a failed `sovereign up`, the API server
# restarted, the leading operator killed, the operator killed at every failpoint of provisioning and offboarding.
faults: install
	$(BIN)/python -m pytest --durations=15 -m faults $(PYTEST_ARGS); code=$$?; \
	  if [ $$code -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$code

# The attacks kept as tests (also in `make test`), one line per attack: what was tried, and its verdict.
security: install
	$(BIN)/python -m pytest tests/security -v -p no:cacheprovider $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache

# mypy --strict on what pyproject.toml's [tool.mypy] lists: the shared package, the operator's builders and
# the gateway.
typecheck: install
	$(BIN)/mypy

crds: install
	$(BIN)/sovereign crds generate

# 32 Tenants at once on a devstack of its own, then policy decisions, the access matrix and its verification at NATO scale,
# then the gateway's overhead, tokens/s and scale-out on a Ray of its own; each writes its section of BENCHMARKS.md (see bench/README.md).
bench: install
	$(BIN)/python bench/tenants_at_scale.py $(BENCH_ARGS)
	$(BIN)/python bench/policy_decisions.py $(POLICY_BENCH_ARGS)
	$(BIN)/python bench/policy_verify.py $(POLICY_VERIFY_BENCH_ARGS)
	$(BIN)/python bench/serving.py $(SERVING_BENCH_ARGS)
	$(BIN)/python bench/serving_scale.py $(SERVING_SCALE_BENCH_ARGS)
	$(BIN)/python bench/audit.py $(AUDIT_BENCH_ARGS)
	$(BIN)/python bench/ingestion.py $(INGESTION_BENCH_ARGS)
	$(BIN)/python bench/retrieval.py $(RETRIEVAL_BENCH_ARGS)
	$(BIN)/python bench/control_plane.py $(CONTROL_PLANE_BENCH_ARGS)
	$(BIN)/python bench/control_plane.py --suspension

bench-policy: install
	$(BIN)/python bench/policy_decisions.py $(POLICY_BENCH_ARGS)

# `sovereign policy verify`'s proof on the same catalogue, against one access matrix of it.
bench-policy-verify: install
	$(BIN)/python bench/policy_verify.py $(POLICY_VERIFY_BENCH_ARGS)

bench-serving: install
	$(BIN)/python bench/serving.py $(SERVING_BENCH_ARGS)

# The same rig with 2 gateway replicas (vs 1, and the bare ingress likewise) and with 4 nations' gateways at once.
bench-serving-scale: install
	$(BIN)/python bench/serving_scale.py $(SERVING_SCALE_BENCH_ARGS)

# Where a request's time goes, by command: a short bench/serving.py run with --profile (py-spy on the gateway
# replicas, the bare ingress and the HTTP proxy); its results go to a temp file, never BENCHMARKS.md, and it
# prints where the flame graphs (speedscope files, not committed) are.
profile-gateway: install
	$(BIN)/python bench/serving.py --profile --seconds 3 --rounds 1 \
		--benchmarks-file $${TMPDIR:-/tmp}/sovereign-profile-gateway.md $(SERVING_BENCH_ARGS)

down: install
	$(BIN)/sovereign down --state-dir $(STATE_DIR)

clean: down
	rm -rf $(STATE_DIR)

bench-audit: install
	$(BIN)/python bench/audit.py $(AUDIT_BENCH_ARGS)

bench-ingestion: install
	$(BIN)/python bench/ingestion.py $(INGESTION_BENCH_ARGS)

# Retrieval p50/p99 at 100,000 chunks x 384 dimensions, filtered by markings vs not (issue 8).
bench-retrieval: install
	$(BIN)/python bench/retrieval.py $(RETRIEVAL_BENCH_ARGS)

# `sovereign up` (control plane and operator, no Ray, no examples) against a baseline revision, first start and
# again after `down` on the same state dir.
bench-control-plane: install
	$(BIN)/python bench/control_plane.py $(CONTROL_PLANE_BENCH_ARGS)

# Seconds from a Tenant's `spec.suspended: true` to its analyst's first 403 (and back), with Ray.
bench-suspension: install
	$(BIN)/python bench/control_plane.py --suspension

# Soak at load (not in `make test` nor `make bench`): the local platform measures its capacity, then takes mixed
# traffic at 80 % of it for 10 minutes; fails on an unexpected error, memory growth, p99 drift or an audit record
# missing or doubled. Writes its section of RELIABILITY.md. SOAK_ARGS="--minutes 2" for a shorter run.
SOAK_ARGS ?=
soak: install
	$(BIN)/python bench/soak.py $(SOAK_ARGS)
