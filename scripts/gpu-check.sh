#!/usr/bin/env bash
# One command to check prunesearch on a CUDA GPU: the CUDA tests, then the GPU benchmark
# (benchmarks/speed.py --device cuda); about 6 minutes on an H100. Writes its logs and figures
# to OUT_DIR (default: $OUT, else ./gpu-check).
#
# On a machine that has torch with CUDA but not prunesearch's other dependencies and no package
# index (e.g. a lent GPU machine): run ../shared/tools/gpu-wheels.sh first where there is one,
# then `pip download -d .whl --no-deps --only-binary=:all: tenacity 'filelock>=3.21'` (not in
# that script's list), bring .whl/ along, and this script installs from it.
#
#   bash scripts/gpu-check.sh [OUT_DIR] [DATA_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-gpu-check}}"
data="${2:-data-absent}"
mkdir -p "$out"
if [[ -d .whl ]] && ! python3 -c "import optuna, mlflow, torch_pruning, tenacity; from filelock import ReadWriteLock" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:$PWD/src:$PWD/tests${PYTHONPATH:+:$PYTHONPATH}"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/device.txt"
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.__version__)"

echo "== CUDA tests"
python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tee "$out/tests.log"

echo "== GPU benchmark"
python3 benchmarks/speed.py --device cuda --data-dir "$data" --rounds 2 \
    --json "$out/speed-cuda.json" 2>&1 | tee "$out/speed-cuda.md"
