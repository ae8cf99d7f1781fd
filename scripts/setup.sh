#!/usr/bin/env bash
# Create .venv with diffbench, DVC and the test tools, saying each step. A rerun installs nothing when .venv
# already holds this checkout's diffbench and every requirement of pyproject.toml (scripts/check_venv.py).
# TORCH_SPEC overrides the torch pin (default: the CPU machines' torch 2.14.1; GPU machines bring 2.11).
set -euo pipefail
cd "$(dirname "$0")/.."
extras=pipeline,test,clip
start=$SECONDS
say() { echo "setup: $*"; }

if [[ ! -x .venv/bin/python ]]; then
  if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    say "diffbench needs Python >= 3.11 as python3; found $(python3 --version 2>&1)" >&2
    exit 1
  fi
  say "creating .venv with $(python3 --version)"
  python3 -m venv .venv
fi
if gap=$(.venv/bin/python scripts/check_venv.py "$extras"); then
  say ".venv is up to date (this checkout's diffbench[$extras], every requirement met): nothing to install"
  exit 0
fi
say "$gap"
if ! .venv/bin/python -c "import torch, torchvision" 2>/dev/null; then
  torch_spec=${TORCH_SPEC:-torch==2.14.1 torchvision==0.29.1}
  say "installing $torch_spec: several GB with its CUDA libraries, 1.5-3 minutes without output"
  .venv/bin/python -m pip install -q $torch_spec
fi
say "installing diffbench[$extras] from this checkout (editable) with DVC, pytest and open_clip"
.venv/bin/python -m pip install -q -e ".[$extras]"
say ".venv ready in $((SECONDS - start)) s"
