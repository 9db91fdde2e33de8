#!/usr/bin/env bash
# Run ON the GPU machine (the device tool), after benchmarks/gpu_prepare.sh here:
#   run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=560)
# Installs the carried wheels beside the machine's torch and timm, then times every CUDA
# path with benchmarks/gpu_check.py. Results: $OUT/gpu_check.json and $OUT/gpu_check.log.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-/tmp/gpu-check}"
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
# Work files (synthetic data, runs) stay on the machine; only the results come back.
python3 benchmarks/gpu_check.py --out /tmp/gpu-work "$@" 2>&1 | tee "$out/gpu_check.log"
cp /tmp/gpu-work/gpu_check.json "$out/" 2>/dev/null
