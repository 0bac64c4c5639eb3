#!/usr/bin/env bash
# The reports' long runs on a GPU machine, in one command (Keras on JAX: that machine has JAX, no TensorFlow).
#
# On the CPU machine, once (needs PyPI and ../shared):
#     bash bench/gpu_reports.sh prepare
#   puts FER-2013 and the wheels of keras, namex and optree (for the GPU machine's Python 3.12) into .gpu/,
#   which git ignores; copy it beside the checkout on the GPU machine.
# Then on the GPU machine, within 9 minutes ($OUT: a folder whose files are copied back):
#     bash bench/gpu_reports.sh run "fer_best" "fer_best --seed=1" "fer_best --seed=2"
#   each argument is one run, an experiment of cnn_params.py and any overrides; all of them train at once on
#   the one GPU, each with its share of its memory. Each run's folder, less its model, comes back as
#   $OUT/<run>.tar.gz (<run>: the argument with its spaces, dashes and '=' made '_', e.g. fer_best_seed_1).
# Back on the CPU machine, with those archives copied to FILES_AT/:
#     for f in FILES_AT/*.tar.gz; do tar -xzf "$f" -C runs/; done; python cnn_results.py runs/
set -euo pipefail
cd "$(dirname "$0")/.."

prepare() {
    mkdir -p .gpu
    grep -qx "/.gpu/" .git/info/exclude 2>/dev/null || echo "/.gpu/" >> .git/info/exclude
    cp ../shared/data/fer2013/fer2013.tar.gz .gpu/
    # The versions this toolkit is tested with (requirements.txt); the GPU machine has the rest of Keras's needs.
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .gpu keras==3.15.1 namex==0.1.0 optree==0.20.0
    du -sh .gpu
}

run() {
    [ $# -gt 0 ] || { echo "name at least one run, e.g. \"fer_best --seed=1\"" >&2; exit 2; }
    export KERAS_BACKEND=jax PYTHONUNBUFFERED=1
    if ! python3 -c "import keras" 2> /dev/null; then          # the GPU machine's image has no Keras
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/*.whl
        export PYTHONPATH=/tmp/site
    fi
    # JAX takes 75 % of the GPU's memory by default; the runs share it.
    export XLA_PYTHON_CLIENT_MEM_FRACTION=$(python3 -c "print(round(0.9 / $#, 2))")
    mkdir -p data runs
    [ -d data/fer2013 ] || tar -xzf .gpu/fer2013.tar.gz -C data
    names=() pids=()
    for spec in "$@"; do
        read -r experiment overrides <<< "$spec"
        name=$(echo "$spec" | sed 's/--//g; s/[ =-]\+/_/g')
        names+=("$name")
        mkdir -p "runs/$name"           # so that a run stopped by a bad override still sends back its log
        # shellcheck disable=SC2086   # the overrides are separate words
        python3 cnn_run.py --experiment="$experiment" $overrides --data_dir=data/fer2013 --out_dir="runs/$name" \
            > "runs/$name.log" 2>&1 &
        pids+=($!)
    done
    status=0
    for pid in "${pids[@]}"; do
        wait "$pid" || status=1          # a failed run still sends back what it wrote
    done
    for name in "${names[@]}"; do
        tail -n 4 "runs/$name.log"
        tar -czf "${OUT:-runs}/$name.tar.gz" --exclude=model.keras --exclude=backup -C runs "$name" "$name.log"
    done
    return $status
}

case "${1:-}" in
    prepare) prepare ;;
    run) shift; run "$@" ;;
    *) echo "usage: bash bench/gpu_reports.sh prepare | run \"EXPERIMENT [--name=value ...]\" ..." >&2; exit 2 ;;
esac
