#!/usr/bin/env bash
# Several training runs side by side on one lent GPU (a small network leaves most of a big
# GPU idle, so runs in parallel cost little more wall time than one), to pick the shipped
# models from afterwards with benchmarks/compare_fast.py on the CPU.
#
# here:   python benchmarks/train_models.py pack --photos /tmp/photos --val /tmp/photos_val --into .data
# there:  bash benchmarks/gpu_tune.sh        (carry .data; everything lands in $OUT/tune.tgz)
#
# Each line of RUNS is "NAME STYLE [train_models.py train flags]": NAME/STYLE.pt and its last
# preview come back. On an H200, six runs side by side made 1685-1783 steps of 16 each in
# 6 minutes (the GPU 100 % busy), about 30 steps/s in all against 24 for one run alone.
# The shipped starry_night and wave came from the default RUNS, then a second call that went
# on from four of them (their models copied to .data/r1/NAME/): MINUTES=5 RUNS="sn2_new12
# starry_night --init .data/r1/sn_new12 --style-weight 12 ..." (README.md, Fast transfer). A rehearsal on a CPU: DEVICE=cpu MINUTES=0.05 EXTRA="--size 64
# --batch-size 2 --workers 1" bash benchmarks/gpu_tune.sh
#
# The device tool stops a command at 600 s, and this script's results leave only in the
# tarball it makes at the end, so every run is interrupted (SIGINT: the trainer then writes a
# checkpoint) at LIMIT seconds whatever MINUTES says, and a run cut short that way comes back
# as its checkpoint, STYLE.ckpt (`load_model`, `compare_fast.py --models` and `--init`
# read it like a model). Starting takes about 15 s on an H200, so MINUTES=9 fits one call.
set -u
OUT=${OUT:-/tmp/gpu-tune}
DEVICE=${DEVICE:-cuda}
PY=${PYTHON:-python3}
MINUTES=${MINUTES:-6}
LIMIT=${LIMIT:-570}  # seconds the runs may take in all; the tarball needs a few more
if awk "BEGIN { exit !($MINUTES * 60 > $LIMIT) }"; then
    echo "MINUTES=$MINUTES is more than LIMIT=$LIMIT s allows (the device tool stops a command at 600 s)" >&2
    exit 2
fi
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
RUNS=${RUNS:-"sn_init12 starry_night --init src/brushwork/models --style-weight 12
sn_init18 starry_night --init src/brushwork/models --style-weight 18
sn_new12 starry_night --style-weight 12
sn_new12w16 starry_night --style-weight 12 --channels 16
wave_init15 wave --init src/brushwork/models --style-weight 15
wave_init20 wave --init src/brushwork/models --style-weight 20"}
mkdir -p "$OUT/tune"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
while read -r name style flags; do
    # shellcheck disable=SC2086  # flags are words
    timeout -s INT "$LIMIT" $PY benchmarks/train_models.py train \
        --data .data/photos --val .data/photos_val --weights .data/vgg19-slim.pt \
        --styles "$style" --minutes "$MINUTES" --batch-size 16 --workers 2 \
        --preview-every 1000 --device "$DEVICE" --out "/tmp/tune/$name" \
        --work "/tmp/tune-work/$name" --export "$OUT/tune/$name" $flags ${EXTRA:-} \
        >"$OUT/tune/$name.txt" 2>&1 &
done <<<"$RUNS"
(sleep 120; nvidia-smi >"$OUT/tune/nvidia-smi.txt" 2>&1) &  # how busy the GPU is, midway
wait
while read -r name style flags; do  # a run cut short: its checkpoint and last preview
    if [ ! -e "$OUT/tune/$name/$style.pt" ] && [ -e "/tmp/tune-work/$name/$style.ckpt" ]; then
        mkdir -p "$OUT/tune/$name"
        cp "/tmp/tune-work/$name/$style.ckpt" "$OUT/tune/$name/"
        last=$(ls "/tmp/tune-work/$name/$style"/step_*.jpg 2>/dev/null | tail -n 1)
        [ -n "$last" ] && cp "$last" "$OUT/tune/$name/${style}_preview.jpg"
        echo "$name: stopped at LIMIT; its checkpoint came back instead of a model" >>"$OUT/tune/$name.txt"
    fi
done <<<"$RUNS"
tail -n 3 "$OUT"/tune/*.txt
tar czf "$OUT/tune.tgz" -C "$OUT" tune && rm -rf "$OUT/tune"
