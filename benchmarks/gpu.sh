#!/usr/bin/env bash
# Every GPU measurement, on one GPU, in under 10 minutes (most of it compiling):
#   PredNet at the paper config (128x160, 10 frames, batch 4; Lotter et al. 2016) eager and in
#   bf16, each in both activation layouts (NHWC, NCHW), and compiled, each with the projected
#   time of the paper's 18,750 steps;
#   the CDNA paper config (cdna_push; Finn et al. 2016) eager, compiled and in bf16 through
#   Lightning, with the projected time of its 100,000 updates;
#   the loader against a raw h5py read.
# Each writes its record under $RESULTS (default benchmarks/results).
#
#   bash benchmarks/gpu.sh                     # from any folder; uses .venv if there is one
#   STEPS=100 RESULTS=/tmp/gpu bash benchmarks/gpu.sh
# DEVICE=cpu with PREDNET_ARGS="--size 16 32" and CDNA_ARGS="model.net.image_size=[16,16] ..."
# tries the script out on a CPU at toy sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$([[ -x .venv/bin/python ]] && echo .venv/bin/python || echo python)}
DEVICE=${DEVICE:-cuda}
STEPS=${STEPS:-50}
RESULTS=${RESULTS:-benchmarks/results}
read -ra prednet_args <<< "${PREDNET_ARGS:-}"
read -ra cdna_args <<< "${CDNA_ARGS:-}"

if [[ $DEVICE == cuda* ]]; then
    "$PYTHON" -c "import torch, sys; sys.exit(not torch.cuda.is_available())" \
        || { echo "gpu.sh: torch sees no CUDA device; run it on a GPU machine." >&2; exit 1; }
fi

start=$SECONDS
measure() {
    echo "== $* [$((SECONDS - start)) s]"
    "$PYTHON" -m "$@"
}
prednet=(benchmarks.prednet --results "$RESULTS" speed --device "$DEVICE" --steps "$STEPS")
measure "${prednet[@]}" "${prednet_args[@]}"  # both layouts
measure "${prednet[@]}" --amp "${prednet_args[@]}"
# Compiling takes minutes at this size: the paper config in its shipped layout only.
measure "${prednet[@]}" --compile --configs paper --layouts channels_last "${prednet_args[@]}"
measure benchmarks.gpu_steps cdna_push "${cdna_args[@]}" --results "$RESULTS" \
    --device "$DEVICE" --steps "$STEPS" --variants eager compiled bf16
measure benchmarks.loader --results "$RESULTS"
echo "== all measured in $((SECONDS - start)) s; records in $RESULTS"
