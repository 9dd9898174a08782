# Two commands do everything: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed

.PHONY: demo test bench install clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch first, from the exact pin (a CPU build on this machine's disk), then the project, then
# the compiled recurrent kernel, built against that torch (about 30 s; a failure only warns).
$(STAMP): $(PY) pyproject.toml constraints.txt
	$(PIP) install -q -c constraints.txt torch
	$(PIP) install -q -c constraints.txt -e '.[test]'
	$(PY) -c "from rnntrain.core.compiled import main; main()"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/rnntrain train --out runs/demo --overwrite

# -n auto: one worker per core (pytest-xdist); every test sets its own single torch thread
test: $(STAMP)
	$(PY) -m pytest -n auto

bench: $(STAMP)
	$(PIP) install -q -c constraints.txt -e ".[bench]"
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) runs .pytest_cache
