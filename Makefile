# Two entry points for a fresh machine (see README): `make demo` and `make test`.
# scripts/venv.sh prints the path of the environment, building it outside the clone on first use.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

.PHONY: demo test
demo:  ## set up, then run the fast seed study on the offline ImageNet networks and print where the report is
	venv=$$(bash scripts/venv.sh) && "$$venv/bin/featinv" study seed --fast --out runs/study-seed-fast

test:  ## set up (the environment, and Chromium for the report tests), lint and type-check, then run the whole test suite (CPU, offline)
	bash scripts/browser.sh
	venv=$$(bash scripts/venv.sh) && "$$venv/bin/ruff" check src tests benchmarks scripts \
		&& "$$venv/bin/ruff" format --check src tests benchmarks scripts && "$$venv/bin/mypy" \
		&& "$$venv/bin/python" -m pytest -q
