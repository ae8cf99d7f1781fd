#!/usr/bin/env bash
# Set up (if needed) and run the quick profile end to end: `dvc repro` in profiles/quick.
# Offline: set DIFFBENCH_DATA_DIR (folder holding mnist/ and cifar10-jpeg/) and
# DIFFBENCH_INCEPTION_WEIGHTS (FID Inception state dict) first; see README "Offline use".
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
cd profiles/quick
dvc repro "$@"
python -m diffbench summary reports/summary.json   # one line per run; the full records: reports/ and results/
