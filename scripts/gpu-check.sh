#!/usr/bin/env bash
# One command to check prunesearch on a CUDA GPU: the CUDA tests, then the GPU benchmark
# (python -m benchmarks.gpu); about 6 minutes on an H100. Writes its logs and figures to
# OUT_DIR (default: $OUT, else ./gpu-check); its table fills docs/performance.md's GPU section.
#
#   bash scripts/gpu-check.sh [--device cpu] [OUT_DIR] [DATA_DIR]
#
# --device cpu runs the very same steps without a GPU (CUDA tests skipped, the benchmark at
# --smoke size on the CPU), in about a minute on 2 cores: the test suite runs it, so the script
# is known to work before a GPU is lent.
#
# On a machine that has torch with CUDA but not prunesearch's other dependencies and no package
# index (e.g. a lent GPU machine): run ../shared/tools/gpu-wheels.sh first where there is one,
# then `pip download -d .whl --no-deps --only-binary=:all: tenacity filelock` (not in
# that script's list), bring .whl/ along (carry: [".whl", DATA_DIR]), and this script installs
# from it.
set -euo pipefail
device=cuda
if [[ "${1:-}" == "--device" ]]; then
    device="$2"
    shift 2
fi
if [[ "$device" != cuda && "$device" != cpu ]]; then
    echo "error: --device $device: must be cuda or cpu" >&2
    exit 2
fi
cd "$(dirname "$0")/.."
out="${1:-${OUT:-gpu-check}}"
data="${2:-data-absent}"
mkdir -p "$out"
python="${PYTHON:-python3}"
if [[ -d .whl ]] && ! "$python" -c "import optuna, mlflow, torch_pruning, tenacity, filelock" 2>/dev/null; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
fi

if [[ "$device" == cuda ]]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/device.txt"
    "$python" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.__version__)"
    scale=()
else
    echo "cpu: the GPU check's steps without a GPU" | tee "$out/device.txt"
    scale=(--smoke)
fi

echo "== CUDA tests"
"$python" -m pytest -q -n 0 -p no:cacheprovider tests/test_cuda.py 2>&1 | tee "$out/tests.log"

echo "== GPU benchmark"
"$python" -m benchmarks.gpu --device "$device" "${scale[@]}" --data-dir "$data" \
    --json "$out/speed-$device.json" 2>&1 | tee "$out/speed-$device.md"
