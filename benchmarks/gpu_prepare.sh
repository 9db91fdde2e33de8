#!/usr/bin/env bash
# Run HERE (not on the GPU machine) before benchmarks/gpu_check.sh: puts into .whl/ (ignored
# by git) what the device machine lacks: kornia and kornia_rs for its Python 3.12, and a
# wheel of this checkout of p2pkit (its entry points register the built-in components).
# Then, through the device tool:  run(command="bash benchmarks/gpu_check.sh", carry=[".whl"])
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .whl && mkdir .whl
versions=$(python3 -c 'import importlib.metadata as m; print(m.version("kornia"), m.version("kornia_rs"))')
read -r kornia kornia_rs <<<"$versions"
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .whl "kornia==$kornia" "kornia_rs==$kornia_rs"
python3 -m pip wheel --quiet --no-deps -w .whl .
ls -la .whl
