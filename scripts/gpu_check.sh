#!/usr/bin/env bash
# On a machine with a CUDA GPU (and torch, pytest, torchvision; no streamlit needed): the GPU tests and the
# GPU benchmark rows in one go.   bash scripts/gpu_check.sh DATA_DIR
# DATA_DIR holds MNIST/raw/; gzipped copies (*.gz, as `make gpu-data` makes them) are unpacked first.
set -u
export DATA_DIR="${1:-data}" PYTHONUNBUFFERED=1
for f in "$DATA_DIR"/MNIST/raw/*.gz; do [ -e "$f" ] && gunzip -kf "$f"; done
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -m pytest -q -p no:cacheprovider tests/test_cuda_graph.py tests/test_core.py tests/test_softmax.py \
    tests/test_preprocess.py tests/test_registries.py -k "not page and not app" 2>&1 | tail -30
python3 benchmarks/bench_gpu.py --data-dir "$DATA_DIR" --epochs 3
