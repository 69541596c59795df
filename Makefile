# Two commands for a new user: `make demo` and `make test`. Both install first.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Where a prebuilt mmcv wheel may lie (the project's shared folder); pip builds from source otherwise.
WHEELS ?= ../shared/wheels
STAMP := $(VENV)/.installed
# pytest-xdist workers for `make test` (files are spread over them; 2 fits this 2-core, 24 GiB machine)
TEST_WORKERS ?= 2

.PHONY: install demo test bench clean web

install: $(STAMP)

$(STAMP): setup.py requirements/runtime.txt requirements/tests.txt requirements/reference.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip 'setuptools<70' wheel
	$(PIP) install -q torch==2.11.0 torchvision==0.26.0
	@if $(PY) -c "import mmcv, mmcv.ops" 2>/dev/null; then \
		echo "mmcv with ops already installed"; \
	elif [ -d "$(WHEELS)" ] && ls $(WHEELS)/mmcv-2.1.0-*.whl >/dev/null 2>&1; then \
		echo "Installing mmcv 2.1.0 from the prebuilt wheel in $(WHEELS)"; \
		$(PIP) install -q --find-links $(WHEELS) mmcv==2.1.0; \
	else \
		echo "Building mmcv 2.1.0 (full, with ops) from source: about 13 minutes on 2 cores..."; \
		$(PIP) install --no-build-isolation mmcv==2.1.0; \
	fi
	$(PIP) install -q --no-build-isolation -e '.[tests]'
	$(PIP) install -q --no-deps -r requirements/reference.txt
	@touch $(STAMP)

demo: install
	$(PY) tools/demo.py

# The web demo (gradio) on http://127.0.0.1:7860 serving the model `make demo` trains (trained
# first if absent); `python tools/web_demo.py CONFIG CHECKPOINT` serves another.
web: install
	$(PY) tools/web_demo.py

test: install
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile tests

bench: install
	$(PY) tools/benchmark.py --arch vit_b --img-size 512 --batch 1 --classes-per-image 4 \
		--warmup 1 --repeats 3 --text-img-size 256 --json work_dirs/benchmark/bench.json \
		--plot work_dirs/benchmark/bench.png
	$(PY) tools/benchmark.py --method clip_guided_sam --arch vit_b --img-size 512 --clip-size 256 \
		--batch 1 --classes-per-image 4 --warmup 1 --repeats 2 \
		--json work_dirs/benchmark/bench_cgs.json --plot work_dirs/benchmark/bench_cgs.png

clean:
	rm -rf $(VENV) work_dirs .pytest_cache
