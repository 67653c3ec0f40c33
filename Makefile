# Two entry points for a fresh machine (see README): `make demo` and `make test`.
# scripts/venv.sh prints the path of the environment, building it outside the clone on first use.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

.PHONY: demo test
demo:  ## set up, then invert skimage's chelsea with the offline ImageNet VGG16 and print the run folder
	venv=$$(bash scripts/venv.sh) && "$$venv/bin/featinv" invert skimage:chelsea

test:  ## set up, then run the whole test suite (CPU, offline)
	venv=$$(bash scripts/venv.sh) && "$$venv/bin/python" -m pytest -q
