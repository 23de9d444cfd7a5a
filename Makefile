# fmrobust: two commands do everything.
#   make test                 set up .venv, run the test suite
#   make book [PROFILE=...]   set up .venv, run the study (or reuse its cached results), build the book
PROFILE ?= standard
PYTHON  ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
# The set-up stamp is keyed by the hash of pyproject.toml: a changed dependency list re-installs.
STAMP   := $(VENV)/.setup-$(shell $(PYTHON) -c "import hashlib;print(hashlib.sha256(open('pyproject.toml','rb').read()).hexdigest()[:16])")

.PHONY: setup test book study html clean bench

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	# The kernel papermill runs ("python3") is the venv's own interpreter.
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (fmrobust)" >/dev/null
	@rm -f $(VENV)/.setup-*
	@touch $@

test: setup
	$(BIN)/python -m pytest

study: setup
	$(BIN)/fmrobust run --profile $(PROFILE)

html: setup
	$(BIN)/jupyter-book build . --path-output . --keep-going

book: study html
	@echo "Book: $(CURDIR)/_build/html/index.html"

bench: setup
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf _build
