#!/usr/bin/env bash
# On a bare GPU machine of the device tool, from the copy of the repository it runs in: install one call's
# part of what scripts/device_bundle.sh packed. Calls 1-4 must run back to back on the same machine (it is
# kept 30 s after a call): each step refuses to run where the one before it did not.
#   bash scripts/device_setup.sh 1 DIR          wheels into /root/site, MNIST into /root/stash/data
#   bash scripts/device_setup.sh 2 DIR          Inception part 0, the cifar10-jpeg archive
#   bash scripts/device_setup.sh 3 DIR          Inception part 1
#   bash scripts/device_setup.sh 4 DIR COMMIT   part 2, the weights checked by hash, this tree copied to
#                                               /root/work, /root/env.sh written (PYTHONPATH, data, weights,
#                                               DIFFBENCH_COMMIT)
# DEVICE_ROOT (default /root) moves everything it writes elsewhere (tests/test_device_scripts.py).
set -euo pipefail
step=${1:?usage: device_setup.sh STEP DIR [COMMIT]}; dir=${2:?usage: device_setup.sh STEP DIR [COMMIT]}
root=${DEVICE_ROOT:-/root}; stash=$root/stash
cd "$(dirname "$0")/.."
if (( step > 1 )) && [[ ! -e $stash/step$((step - 1)) ]]; then
  echo "device_setup: step $((step - 1)) has not run on this machine (a fresh one?): start again at call 1" >&2
  exit 2
fi
[[ -d $dir/call$step ]] || { echo "device_setup: $dir/call$step: missing (carry it with this call)" >&2; exit 2; }
case $step in
  1)
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$root/site" "$dir"/call1/wheels/*.whl
    # a system pip writes #!/usr/bin/python3 into the scripts; the shard script runs `python -m dvc` anyway
    sed -i '1s|^#!/usr/bin/python3$|#!/usr/bin/env python3|' "$root"/site/bin/* 2>/dev/null || true
    mkdir -p "$stash/data" && rm -rf "$stash/data/mnist" && cp -r "$dir/call1/mnist" "$stash/data/mnist";;
  2)
    cp "$dir/call2/inception.part0" "$stash/"
    mkdir -p "$stash/data/cifar10-jpeg" && cp "$dir/call2/cifar10-jpeg.tar.gz" "$stash/data/cifar10-jpeg/";;
  3)
    cp "$dir/call3/inception.part1" "$stash/";;
  4)
    commit=${3:?device_setup: step 4 needs the COMMIT the copy was made from}
    cat "$stash/inception.part0" "$stash/inception.part1" "$dir/call4/inception.part2" > "$stash/inception.pth"
    if [[ $(sha256sum "$stash/inception.pth" | cut -d' ' -f1) != $(cat "$dir/call4/inception.sha256") ]]; then
      echo "device_setup: $stash/inception.pth: sha256 differs from the bundle's" >&2; exit 2
    fi
    rm -rf "$root/work" && mkdir -p "$root/work" "$root/outbox"
    tar cf - --exclude="./$dir" . | tar xf - -C "$root/work"
    cat > "$root/env.sh" <<ENV
export PYTHONPATH=$root/work:$root/site PATH=$root/site/bin:\$PATH PYTHONUNBUFFERED=1
export DIFFBENCH_DATA_DIR=$stash/data DIFFBENCH_INCEPTION_WEIGHTS=$stash/inception.pth DIFFBENCH_COMMIT=$commit
ENV
    (. "$root/env.sh" && python3 -c "import dvc, torch_fidelity") \
      || { echo "device_setup: dvc or torch_fidelity does not import from $root/site" >&2; exit 2; };;
  *) echo "device_setup: STEP must be 1, 2, 3 or 4, got $step" >&2; exit 2;;
esac
touch "$stash/step$step"
echo "device_setup: step $step done ($(du -sh "$stash" | cut -f1) in $stash)"
