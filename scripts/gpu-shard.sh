#!/usr/bin/env bash
# Run one shard of the reference profile on a GPU machine, from a bare machine, before a deadline.
# Usage: scripts/gpu-shard.sh SHARD MINUTES [OUT_DIR]
# Needs dvc and torch-fidelity importable (PYTHONPATH to an unpacked wheelhouse, see README "Reference
# results"), DIFFBENCH_DATA_DIR and DIFFBENCH_INCEPTION_WEIGHTS as in "Offline use", and DIFFBENCH_COMMIT
# when this copy has no git history (every record states the commit its code came from).
# Ends by packing what the repository keeps (records, grids, model cards, loss curves, dvc.lock, logs)
# into OUT_DIR/shard-SHARD.tar.gz; model weights and sample sets stay in the DVC cache of the machine.
set -uo pipefail
shard=$1; minutes=$2; out=${3:-}
cd "$(dirname "$0")/.."
export DIFFBENCH_SHARD=$shard PYTHONUNBUFFERED=1
export TORCHINDUCTOR_CACHE_DIR=${TORCHINDUCTOR_CACHE_DIR:-$PWD/.inductor-cache}
if git rev-parse --git-dir >/dev/null 2>&1; then
  export DIFFBENCH_COMMIT=${DIFFBENCH_COMMIT:-$(git rev-parse HEAD)}
else
  : "${DIFFBENCH_COMMIT:?set DIFFBENCH_COMMIT: this copy has no git history}"
  python -m dvc config --local core.no_scm true
fi
nvidia-smi --query-gpu=name,memory.total --format=csv
echo "shard $shard, commit $DIFFBENCH_COMMIT, $minutes min, started $(date -u +%FT%TZ)"
python -m diffbench plan --check || exit 2
python scripts/gpu_shard.py "$shard" --minutes "$minutes"
rc=$?
echo "shard $shard ended with exit $rc at $(date -u +%FT%TZ)"
if [[ -n $out ]]; then
  mkdir -p "$out"
  find reference_models results -type f \( -name '*.json' -o -name '*.md' -o -name '*.tsv' -o -name '*.png' \) \
    > shard-logs/files.txt
  tar czf "$out/shard-$shard.tar.gz" dvc.lock shard-logs -T shard-logs/files.txt
  ls -la "$out"
fi
exit $rc
