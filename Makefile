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
# Then the project's bytecode, as a non-editable pip install writes it: where Python is told
# not to write bytecode (PYTHONDONTWRITEBYTECODE, as on these machines), every process would
# otherwise compile rnntrain's sources again (0.25 s of a run's start here). Python checks each
# file's bytecode against the source, so an edited file is compiled afresh, never run stale.
$(STAMP): $(PY) pyproject.toml constraints.txt
	$(PIP) install -q -c constraints.txt torch
	$(PIP) install -q -c constraints.txt -e '.[test]'
	$(PY) -c "from rnntrain.core.compiled import main; main()"
	$(PY) -m compileall -q src > /dev/null
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/rnntrain train --out runs/demo --overwrite

# -n auto: one worker per core (pytest-xdist); every test sets its own single torch thread.
# --dist worksteal: an idle worker takes tests queued for the other, so neither waits at the
# end (measured 3 December: 10:34 against 11:28 with the default scheduling, the same CPU)
test: $(STAMP)
	$(PY) -m pytest -n auto --dist worksteal

bench: $(STAMP)
	$(PIP) install -q -c constraints.txt -e ".[bench]"
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) runs .pytest_cache
