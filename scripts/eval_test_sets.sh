#!/usr/bin/env bash
# Scores a model on the project's four fixed test sets (testsets/{clean,sketch,scan,photo}) and
# prints one table: a row per set and one for all. Extra arguments go to 'cad2program eval'.
#   scripts/eval_test_sets.sh --model runs/cpu [--beam 4] [--report report.json] [--out predictions/]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
exec cad2program eval --data "$here/testsets/clean" "$here/testsets/sketch" "$here/testsets/scan" \
    "$here/testsets/photo" "$@"
