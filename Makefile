.PHONY: setup run test lint bench clean

setup:
	@bash scripts/setup.sh

run: setup
	.venv/bin/sightline demo $(ARGS)

test: setup
	.venv/bin/ruff check .
	.venv/bin/python -m pytest -q $(PYTEST_ARGS)

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

clean:
	.venv/bin/sightline dev down || true
	rm -rf .sightline
