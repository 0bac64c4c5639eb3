#!/usr/bin/env bash
# The reports' long runs on any machine with a GPU, JAX and Python 3.12, in one command (Keras on JAX:
# no TensorFlow needed there).
#
# Where the data and PyPI are, once:
#     bash bench/gpu_reports.sh prepare [FER2013.tar.gz]
#   puts FER-2013 (the Kaggle folder layout, as a .tar.gz; by default ../shared/data/fer2013/fer2013.tar.gz)
#   and the wheels of keras, namex and optree (for Python 3.12) into .gpu/, which git ignores; copy it
#   beside the checkout on the GPU machine.
# Then on the GPU machine:
#     bash bench/gpu_reports.sh run ARCHIVES "fer_best" "fer_best --seed=1" "fer_best --seed=2"
#   ARCHIVES: the folder the results go to. Each further argument is one run, an experiment of cnn_params.py
#   and any overrides; all of them train at once on the one GPU, each with its share of its memory. Each
#   run's folder, less its model, comes back as ARCHIVES/<run>.tar.gz (<run>: the argument with its spaces,
#   dashes and '=' made '_', e.g. fer_best_seed_1).
# Back where you read results, with those archives copied to a folder RESULTS/:
#     for f in RESULTS/*.tar.gz; do tar -xzf "$f" -C runs/; done; python cnn_results.py runs/
set -euo pipefail
cd "$(dirname "$0")/.."

prepare() {
    mkdir -p .gpu
    grep -qx "/.gpu/" .git/info/exclude 2>/dev/null || echo "/.gpu/" >> .git/info/exclude
    cp "${1:-../shared/data/fer2013/fer2013.tar.gz}" .gpu/fer2013.tar.gz
    # The versions this toolkit is tested with (requirements.txt); the GPU machine has the rest of Keras's needs.
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .gpu keras==3.15.1 namex==0.1.0 optree==0.20.0
    du -sh .gpu
}

run() {
    [ $# -gt 1 ] || { echo "give the results folder, then at least one run, e.g. run results \"fer_best --seed=1\"" >&2; exit 2; }
    archives=$(mkdir -p "$1" && cd "$1" && pwd)
    shift
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
        tar -czf "$archives/$name.tar.gz" --exclude=model.keras --exclude=backup -C runs "$name" "$name.log"
    done
    return $status
}

case "${1:-}" in
    prepare) shift; prepare "$@" ;;
    run) shift; run "$@" ;;
    *) echo "usage: bash bench/gpu_reports.sh prepare [FER2013.tar.gz] | run RESULTS_DIR \"EXPERIMENT [--name=value ...]\" ..." >&2; exit 2 ;;
esac
