#!/usr/bin/env bash
# Issue 9's throughput table and issue 10's recipe comparison in one GPU lease, from a bare machine.
# Usage: scripts/gpu-benchmarks.sh OUT_DIR [END_EPOCH]
#   environment: PARTS (default "training sampling recipe"), MODES (training modes, default eager,compile),
#   TRAIN_DATASETS (default both), TRAIN_VARIANTS, SAMPLE_VARIANTS ("none": no variant rows)
# Needs torch-fidelity (and diffusers, for its comparison rows) importable, DIFFBENCH_DATA_DIR and
# DIFFBENCH_INCEPTION_WEIGHTS as in the README's "Offline use", and DIFFBENCH_COMMIT where this copy has
# no git history. Runs, one after the other (timings never share the GPU):
#   1. prepare cifar10-jpeg and mnist (the metric part times the cifar10-jpeg splits);
#   2. training: benchmarks/throughput.py --parts training --profile, with the variants of $TRAIN_VARIANTS
#      (default: force_layout=true and force_layout=false, so each dataset gets the row its params do not
#      already measure: a variant restating the params is skipped; and group_norm_moments=false, the
#      F.group_norm statistics the params replaced) beside the params.yaml rows;
#   3. sampling: benchmarks/throughput.py --parts sampling,metrics --profile, with the DDIM-50 variants of
#      $SAMPLE_VARIANTS (default: group_norm_moments=false, the statistics the params replaced, and
#      coordinate_descent=true; 2026-12-03 measured cudagraphs 1.01x/1.06x and batch 2000 1.01x/1.09x on the
#      CIFAR/MNIST U-Nets with F.group_norm, channels_last 1.00x, and group_norm_moments 1.16x/1.27x:
#      reports/performance.md; "none": no variant rows);
#   4. both merged into OUT_DIR/performance.{json,md};
#   5. recipe: benchmarks/recipe.py on cifar10-jpeg (linear, the params recipe, EMA 0.99 / 0.995 / 0.999
#      averaged in one run; MNIST's comparison is committed in reports/recipe_mnist.md), cut at END_EPOCH
#      (seconds since 1970; default: 570 s after it starts): it rewrites its JSON, table and plot after every
#      evaluation point, so a cut run keeps what it measured.
# Training's cudagraphs is a params key since 2026-12-03 (MNIST 2.33x, CIFAR 1.02x); coordinate_descent on the
# CIFAR training step was still compiling after ~6 minutes that day, so it is no longer a default variant.
set -uo pipefail
out=${1:?usage: scripts/gpu-benchmarks.sh OUT_DIR [END_EPOCH]}; end_epoch=${2:-}
cd "$(dirname "$0")/.."
mkdir -p "$out"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}  # the benchmarks import diffbench from this checkout
export PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=${TORCHINDUCTOR_CACHE_DIR:-$PWD/.inductor-cache}
if git rev-parse --git-dir >/dev/null 2>&1; then
  export DIFFBENCH_COMMIT=${DIFFBENCH_COMMIT:-$(git rev-parse HEAD)}
fi
: "${DIFFBENCH_COMMIT:?set DIFFBENCH_COMMIT: this copy has no git history}"
stamp() { echo "== $* at $(date -u +%FT%TZ)"; }
nvidia-smi --query-gpu=name,memory.total --format=csv
stamp "benchmarks of commit $DIFFBENCH_COMMIT started"
for dataset in cifar10-jpeg mnist; do python -m stages.prepare "$dataset" || exit 2; done
parts=" ${PARTS:-training sampling recipe} "
if [[ $parts == *" training "* ]]; then
  stamp "training part"
  python benchmarks/throughput.py --parts training --profile --modes "${MODES:-eager,compile}" \
    --datasets "${TRAIN_DATASETS:-cifar10-jpeg,mnist}" \
    --train-variants ${TRAIN_VARIANTS:-force_layout=true force_layout=false group_norm_moments=false} --out "$out/training.json"
fi
if [[ $parts == *" sampling "* ]]; then
  stamp "sampling and metrics parts"
  sample_variants=${SAMPLE_VARIANTS:-group_norm_moments=false coordinate_descent=true}
  variants=(); [[ $sample_variants != none ]] && variants=(--sample-variants $sample_variants)
  python benchmarks/throughput.py --parts sampling,metrics --profile "${variants[@]}" \
    --metrics-train data/cifar10-jpeg/train.npz --metrics-test data/cifar10-jpeg/test.npz --out "$out/sampling.json"
fi
files=(); for f in "$out/training.json" "$out/sampling.json"; do [[ -f $f ]] && files+=("$f"); done
[[ ${#files[@]} -gt 0 ]] && python benchmarks/throughput.py --from-json "${files[@]}" \
  --out "$out/performance.json" --markdown "$out/performance.md"
if [[ $parts != *" recipe "* ]]; then stamp "benchmarks ended"; exit 0; fi
recipe_seconds=570
[[ -n $end_epoch ]] && recipe_seconds=$(( end_epoch - $(date +%s) < 570 ? end_epoch - $(date +%s) : 570 ))
if (( recipe_seconds < 120 )); then stamp "benchmarks ended (no time left for the recipe comparison)"; exit 0; fi
stamp "recipe comparison (at most $recipe_seconds s)"
timeout -k 30 "$recipe_seconds" python benchmarks/recipe.py --dataset cifar10-jpeg --schedule linear \
  --recipes "lr=1e-3,batch=512" --ema 0.99 0.995 0.999 \
  --images 3072000 --eval-every 768000 --n 2000 --steps 50 --out "$out/recipe_cifar10-jpeg.json"
stamp "benchmarks ended (recipe exit $?)"
