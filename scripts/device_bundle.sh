#!/usr/bin/env bash
# Pack what a bare GPU machine of the device tool needs (wheels, data, the FID Inception weights) into one
# folder per call, each small enough to travel with the working tree (64 MiB a call in all), and print the
# calls that install it there with scripts/device_setup.sh. Run here, in the repository root:
#   scripts/device_bundle.sh [DIR]      # DIR default .gpu (git-ignored)
# Needs DIFFBENCH_DATA_DIR and DIFFBENCH_INCEPTION_WEIGHTS (README "Offline use"), and WHEELHOUSE: a folder
# of Python 3.12 wheels for the machine (dvc, dvclive, torch-fidelity, diffusers and what they need that
# its image lacks; ~26 MB), copied once into DIR and kept; the rest is copied again each time.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-.gpu}
data=${DIFFBENCH_DATA_DIR:?set DIFFBENCH_DATA_DIR to the folder holding mnist/ and cifar10-jpeg/}
weights=${DIFFBENCH_INCEPTION_WEIGHTS:?set DIFFBENCH_INCEPTION_WEIGHTS to the FID Inception weights (.pth)}
limit=$((64 * 1024 * 1024))
for need in "$weights" "$data/mnist" "$data/cifar10-jpeg/cifar10-jpeg.tar.gz"; do
  [[ -e $need ]] || { echo "device_bundle: $need: missing" >&2; exit 2; }
done
mkdir -p "$dir"/call{1,2,3,4}
if ! compgen -G "$dir/call1/wheels/*.whl" >/dev/null; then
  wheels=${WHEELHOUSE:?set WHEELHOUSE to a folder of Python 3.12 wheels for the GPU machine (dvc, torch-fidelity, diffusers)}
  compgen -G "$wheels/*.whl" >/dev/null || { echo "device_bundle: WHEELHOUSE $wheels: no .whl files" >&2; exit 2; }
  mkdir -p "$dir/call1/wheels" && cp "$wheels"/*.whl "$dir/call1/wheels/"
fi
rm -rf "$dir/call1/mnist" "$dir"/call{2,3,4}/*
cp -r "$data/mnist" "$dir/call1/mnist"
cp "$data/cifar10-jpeg/cifar10-jpeg.tar.gz" "$dir/call2/"
size=$(stat -c %s "$weights"); part=$(( (size + 2) / 3 ))
for i in 0 1 2; do
  dd if="$weights" of="$dir/call$((i + 2))/inception.part$i" bs="$part" skip="$i" count=1 status=none
done
sha256sum "$weights" | cut -d' ' -f1 > "$dir/call4/inception.sha256"
tree=$(git ls-files -co --exclude-standard -z | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
for call in 1 2 3 4; do
  total=$(( tree + $(du -sb "$dir/call$call" | cut -f1) ))
  (( total <= limit )) || echo "device_bundle: call $call carries $((total >> 20)) MiB with the working tree (limit 64)" >&2
  args="$call $dir"; (( call == 4 )) && args+=" $(git rev-parse HEAD)"
  echo "call $call: run(command=\"bash scripts/device_setup.sh $args\", carry=[\"$dir/call$call\"])" \
       "  # $((total >> 20)) MiB with the working tree"
done
[[ -z $(git status --porcelain) ]] || echo "device_bundle: the working tree has uncommitted changes: commit first, or call 4 names the wrong commit" >&2
echo "then, in the same or the next call: source /root/env.sh && cd /root/work && setsid nohup JOB > /root/job.out 2>&1 < /dev/null &"
