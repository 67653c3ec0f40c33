# Two entry points for a fresh machine (see README): `make demo` and `make test`.
# The virtual environment lives outside the clone, keyed by the dependency list (scripts/venv.sh).
SHELL := /bin/bash
VENV = $(shell bash scripts/venv.sh)

.PHONY: demo test bench
demo:  ## set up, then invert skimage's chelsea with the offline ImageNet VGG16 and print the run folder
	$(VENV)/bin/featinv invert skimage:chelsea

test:  ## set up, then run the whole test suite (CPU, offline)
	$(VENV)/bin/python -m pytest -q tests
