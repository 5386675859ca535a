# Two commands do all set-up: `make run` and `make test`. Each creates .venv and installs
# what is missing. torch is installed first, pinned, so pip takes the CPU wheel instead of
# pulling a multi-GB CUDA build; on a GPU host set TORCH_SPEC (see README).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
TORCH_SPEC ?= torch==2.13.0
ARGS ?= --config deploy/demo.yaml
PYTEST_ARGS ?=

.PHONY: run test install bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/dicom-node serve $(ARGS)

test: $(STAMP)
	TCP_NODELAY=1 $(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	TCP_NODELAY=1 $(PY) bench/ingest.py

clean:
	rm -rf $(VENV) var
