.PHONY: setup run test test-fast test-chaos test-recipes test-deploy lint clean

# `make run` stops after DURATION seconds; DURATION=0 runs until Ctrl-C. At the end it stops the
# Kafka and Redis it started; ones already running are left running (`sightline dev down`).
DURATION ?= 180

# Two pytest processes, each with its own Kafka and Redis on free ports (a test file stays in one): the
# Kafka tests mostly wait on the broker, so two at once take the suite from ~19 to ~11 minutes on a
# 2-core machine. `make test PYTEST_PARALLEL=` runs them one at a time.
PYTEST_PARALLEL ?= -n 2 --dist loadfile

setup:
	@bash scripts/setup.sh

run: setup
	.venv/bin/sightline demo --duration $(DURATION)

test: setup
	.venv/bin/ruff check .
	.venv/bin/python -m pytest -q $(PYTEST_PARALLEL) $(PYTEST_ARGS)

# Long fault-injection tests (broker and Redis killed and restarted); .ci/run calls it after `make test`.
# The edit-test loop: every test that needs no broker, Redis, model, camera or browser (< 60 s).
test-fast:
	.venv/bin/python -m pytest -q -m 'not infra and not slow and not chaos and not deploy' $(PYTEST_PARALLEL) $(PYTEST_ARGS)

test-chaos: setup
	.venv/bin/python -m pytest -q -m chaos $(PYTEST_PARALLEL) $(PYTEST_ARGS)

# The Compose stack built and run in a private Docker engine (installs docker.io, builds Compose v2).
test-deploy: setup
	@bash scripts/deploy-test.sh $(PYTEST_ARGS)

test-recipes: setup
	.venv/bin/python -m pytest -q -m slow tests/inference

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

clean:
	-.venv/bin/sightline dev down
	rm -rf .sightline
