#!/usr/bin/env bash
# Create .venv (once) with diffbench, DVC and the test tools. Idempotent.
# TORCH_SPEC overrides the torch pin (default: the CPU machines' torch 2.14.1; GPU machines bring 2.11).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
fi
if ! .venv/bin/python -c "import torch, torchvision" 2>/dev/null; then
  .venv/bin/pip install -q ${TORCH_SPEC:-torch==2.14.1 torchvision==0.29.1}
fi
.venv/bin/pip install -q -e ".[pipeline,test,clip]"
