# The two quick-start commands (README): `make reproduce` and `make test`. Both set everything up first.
VENV ?= .venv
MODE ?= quick

.PHONY: setup reproduce test smoke report clean
setup:
	@bash scripts/setup.sh

reproduce: setup
	$(VENV)/bin/tenfold reproduce all --mode $(MODE)

test: setup
	$(VENV)/bin/python -m pytest

smoke: setup
	$(VENV)/bin/tenfold reproduce all --mode smoke --out results-smoke

report:
	$(VENV)/bin/tenfold report results

clean:
	rm -rf results results-smoke .pytest_cache
