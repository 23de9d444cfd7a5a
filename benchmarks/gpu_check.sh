#!/usr/bin/env bash
# The device check of this repository (run on a CUDA machine from the repository root): the
# training/attack/model tests on the GPU, then bench_gpu.py. Wheels the machine lacks travel in .whl/.
set -uo pipefail
OUT=${OUT:-/tmp/gpu_check}; mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, timm, segmentation_models_pytorch as smp; print('torch', torch.__version__, 'timm', timm.__version__, 'smp', smp.__version__)" | tee -a "$OUT/gpu.txt"
timeout 240 python3 -m pytest -q -p no:cacheprovider tests/test_training.py tests/test_attacks.py tests/test_models.py 2>&1 | tail -25 | tee "$OUT/tests.txt"
[ "${BENCH:-1}" = 0 ] || timeout 240 python3 benchmarks/bench_gpu.py --json "$OUT/bench_gpu.json" 2>&1 | tee "$OUT/bench_gpu.txt"
