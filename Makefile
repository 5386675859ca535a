# Two commands do all set-up: `make run` and `make test`. Each creates .venv and installs what is
# missing; `make test` also installs the OS packages the tests run as peers
# (deploy/system-packages.sh: apt-get as root or via sudo -n, else it prints the command to run).
# torch is installed first, pinned, so pip takes the CPU wheel instead of pulling a multi-GB
# CUDA build; on a GPU host set TORCH_SPEC (see README).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
TORCH_SPEC ?= torch==2.13.0
ARGS ?= --config deploy/demo.yaml
PYTEST_ARGS ?=
# The tests that talk to Redis, PostgreSQL and Orthanc: check-fresh runs them where the
# machine's own services cannot be reached.
FRESH_TESTS ?= tests/store/test_index.py tests/qr/test_orthanc.py tests/e2e/test_sidecar_e2e.py

OHIF_VERSION ?= 3.13.2
VIEWER := .viewer/.ohif-$(OHIF_VERSION)

.PHONY: run test install system-packages viewer check-fresh bench clean

$(PY):
	$(PYTHON) -m venv $(VENV) || { echo "cannot create $(VENV): on Debian/Ubuntu install python3-venv"; exit 1; }

$(STAMP): $(PY) pyproject.toml
	@echo "installing into $(VENV) (torch first: a large download on a fresh machine)"
	$(PY) -m pip install --progress-bar on $(TORCH_SPEC)
	$(PY) -m pip install --progress-bar on -e '.[test,models]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

system-packages:
	@bash deploy/system-packages.sh

# The OHIF viewer (npm @ohif/app, MIT): only its prebuilt dist/, pinned; the node serves it at /viewer.
$(VIEWER):
	@command -v npm >/dev/null || { echo "fetching the OHIF viewer needs npm: apt-get install -y npm"; exit 1; }
	rm -rf .viewer && mkdir -p .viewer
	cd .viewer && npm pack --silent @ohif/app@$(OHIF_VERSION) >/dev/null \
	  && tar xzf ohif-app-$(OHIF_VERSION).tgz --strip-components=1 package/dist package/LICENSE \
	  && rm ohif-app-$(OHIF_VERSION).tgz
	touch $(VIEWER)

viewer: $(VIEWER)

run: $(STAMP) viewer
	$(VENV)/bin/dicom-node serve $(ARGS)

test: $(STAMP) system-packages viewer
	TCP_NODELAY=1 $(PY) -m pytest $(PYTEST_ARGS)

# The same tests in a network namespace of their own (loopback only): they pass only if every
# server they need is one they started. Needs root or unprivileged user namespaces.
check-fresh: $(STAMP) system-packages
	unshare -n sh -c 'ip link set lo up && TCP_NODELAY=1 $(PY) -m pytest -q $(FRESH_TESTS)'

bench: $(STAMP)
	TCP_NODELAY=1 $(PY) bench/ingest.py

clean:
	rm -rf $(VENV) var .viewer
