#!/usr/bin/env bash
# Run ON the accelerator through the device tool, after scripts/device/prepare.sh here:
#   run(command="bash scripts/device/train.sh 8", carry=[".whl", ".fonts", "runs/gpu"], timeout_s=600)
# $1: minutes of training (the rest of the call's limit is for start-up, export and copying back).
# Trains the `gpu` config on drawings generated on the fly, resuming runs/gpu if it was carried, and
# leaves the exported models and logs in $OUT/gpu (copy back into runs/gpu to resume next time).
set -euo pipefail
minutes=${1:-8}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
mkdir -p ~/.fonts && cp .fonts/* ~/.fonts/
nvidia-smi --query-gpu=name,memory.total --format=csv
python3 -m cad2program.cli train --workdir runs/gpu --config gpu --no-clearml --time-budget "$minutes" \
  2>&1 | tr '\r' '\n' | grep -v '^$' | tail -n 200
mkdir -p "$OUT/gpu"
cp runs/gpu/*.msgpack runs/gpu/*.jsonl runs/gpu/config.json "$OUT/gpu/" 2>/dev/null || true
