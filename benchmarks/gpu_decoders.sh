#!/usr/bin/env bash
# The decoders of `brushwork fast STYLE_IMAGE` (fast.universal), relu1_1..relu5_1, trained
# side by side on one lent GPU in one device call, as benchmarks/gpu_tune.sh trains style
# networks (the shallow decoders are tiny and leave the GPU mostly idle, so all five run
# at once in about the wall time of relu5_1 alone).
#
# here:   python benchmarks/train_models.py pack --photos /tmp/photos --val /tmp/photos_val --into .data
# there:  bash benchmarks/gpu_decoders.sh      (carry .data; each decoder comes back as
#         $OUT/LAYER.pt, the logs and last previews in $OUT/decoders.tgz)
# then:   copy the files into src/brushwork/models/decoders/ (or give --decoders DIR)
#
# The device tool stops a command at 600 s and brings back at most 8 files of 16 MiB each,
# so every run is interrupted (SIGINT: the trainer writes its checkpoint) at LIMIT seconds
# whatever MINUTES says; a run cut short that way is turned from its checkpoint into a
# decoder file here, so that no optimizer state travels. WIDTH=0.5 keeps relu5_1 at 7.7 MB
# (float16; 26 MB at width 1, over the 16 MiB a file may be).
# A rehearsal on a CPU (a few photos in DIR/photos): DATA=DIR DEVICE=cpu MINUTES=0.05 LIMIT=30
# LAYERS="relu1_1 relu2_1" EXTRA="--size 64
# --batch-size 2 --workers 1 --preview-every 0" bash benchmarks/gpu_decoders.sh
set -u
OUT=${OUT:-/tmp/gpu-decoders}
DEVICE=${DEVICE:-cuda}
PY=${PYTHON:-python3}
MINUTES=${MINUTES:-8}
LIMIT=${LIMIT:-560}  # seconds the runs may take in all; converting and packing need a few more
WIDTH=${WIDTH:-0.5}
LAYERS=${LAYERS:-"relu1_1 relu2_1 relu3_1 relu4_1 relu5_1"}
DATA=${DATA:-.data}
WORK=${WORK:-/tmp/decoders-work}
if awk "BEGIN { exit !($MINUTES * 60 > $LIMIT) }"; then
    echo "MINUTES=$MINUTES is more than LIMIT=$LIMIT s allows (the device tool stops a command at 600 s)" >&2
    exit 2
fi
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
mkdir -p "$OUT/decoders" "$WORK"
[ "$DEVICE" = cpu ] || nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
val=()
[ -d "$DATA/photos_val" ] && val=(--val "$DATA/photos_val")
weights=()
[ -f "$DATA/vgg19-slim.pt" ] && weights=(--weights "$DATA/vgg19-slim.pt")
for layer in $LAYERS; do
    # shellcheck disable=SC2086  # EXTRA is words
    timeout -s INT "$LIMIT" $PY -m brushwork train --decoder "$layer" --width "$WIDTH" \
        --data "$DATA/photos" "${val[@]}" "${weights[@]}" --minutes "$MINUTES" \
        --batch-size 16 --workers 2 --preview-every 500 --checkpoint-every 200 \
        --device "$DEVICE" --quiet -o "$WORK/$layer.pt" ${EXTRA:-} \
        >"$OUT/decoders/$layer.txt" 2>&1 &
done
[ "$DEVICE" = cpu ] || (sleep 120; nvidia-smi >"$OUT/decoders/nvidia-smi.txt" 2>&1) &
wait
for layer in $LAYERS; do
    if [ ! -e "$WORK/$layer.pt" ] && [ -e "$WORK/$layer.pt.ckpt" ]; then
        $PY - "$WORK/$layer.pt.ckpt" "$WORK/$layer.pt" <<'EOF' >>"$OUT/decoders/$layer.txt" 2>&1
import sys
import torch
from brushwork.fast.universal import load_decoder, save_decoder
ckpt, out = sys.argv[1:]
decoder = load_decoder(ckpt)
step = torch.load(ckpt, map_location="cpu", weights_only=True)["step"]
save_decoder(decoder.net, out, {**decoder.settings, "steps": step, "cut_short": True})
print(f"stopped at LIMIT after {step} steps; {out} written from the checkpoint")
EOF
    fi
    [ -e "$WORK/$layer.pt" ] && cp "$WORK/$layer.pt" "$OUT/$layer.pt"
    last=$(ls "$WORK/${layer}_previews"/step_*.jpg 2>/dev/null | tail -n 1)
    [ -n "$last" ] && cp "$last" "$OUT/decoders/${layer}_preview.jpg"
done
tail -n 2 "$OUT"/decoders/*.txt
tar czf "$OUT/decoders.tgz" -C "$OUT" decoders && rm -rf "$OUT/decoders"
ls -l "$OUT"
