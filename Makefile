# Two commands on a fresh machine:  make run   (the dashboard)   and   make test   (the whole test suite)
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PORT   ?= 8501
ADDRESS ?= 127.0.0.1

.PHONY: run test bench bench-quick bench-cpu bench-step bench-drawings bench-frameworks bench-paper bench-cluster bench-class bench-pages draw-latency screenshot setup gpu-data

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

run: setup
	-$(PY) -m core.fetch mnist
	$(VENV)/bin/streamlit run app.py --server.address $(ADDRESS) --server.port $(PORT) \
		--server.headless true --browser.gatherUsageStats false

test: setup
	bash scripts/ensure_chromium.sh
	$(PY) -m pytest -q tests

bench: setup
	$(PY) benchmarks/bench_train.py
	$(PY) benchmarks/bench_busy.py

bench-quick: setup
	$(PY) benchmarks/bench_train.py --quick
	$(PY) benchmarks/bench_busy.py --quick

bench-cpu: setup
	$(PY) benchmarks/bench_cpu_effects.py

bench-step: setup
	$(PY) benchmarks/bench_step.py

bench-drawings: setup
	$(PY) benchmarks/bench_drawings.py

bench-frameworks: setup
	$(PY) benchmarks/bench_frameworks.py

bench-paper: setup
	$(PY) benchmarks/bench_bn_paper.py --part lr
	$(PY) benchmarks/bench_bn_paper.py --part pair --rounds 2

bench-class: setup  # 30 learners on one class-mode server, in Chromium: queue, memory, order, page response
	bash scripts/ensure_chromium.sh
	$(PY) benchmarks/bench_class.py

bench-cluster: setup  # the Ray executor on a two-node cluster started on this machine, against in-process
	$(PY) benchmarks/bench_cluster.py

bench-pages: setup  # per page load time in Chromium, warm / click / cold, 0 and 50 runs on disk (benchmarks/README.md)
	bash scripts/ensure_chromium.sh
	$(PY) benchmarks/bench_pages.py

draw-latency: setup
	bash scripts/ensure_chromium.sh
	DRAW_LATENCY_TRAIN_TAB=1 $(PY) -m pytest -q -s tests/browser/test_draw.py

gpu-data:  # gzipped MNIST in .gpu_data/ (git-ignored), small enough to travel to a GPU machine for scripts/gpu_check.sh
	mkdir -p .gpu_data/MNIST/raw
	for f in $${DATA_DIR:-data}/MNIST/raw/*-ubyte; do gzip -9c $$f > .gpu_data/MNIST/raw/$$(basename $$f).gz; done

# The README's image, refreshed on purpose (tests write screenshots to a temporary folder only)
screenshot: setup
	bash scripts/ensure_chromium.sh
	README_SCREENSHOT=docs/train-page.png $(PY) -m pytest -q -s tests/browser/test_live_chart.py
