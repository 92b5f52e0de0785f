#!/usr/bin/env bash
# Build vidgen's sdist and wheel, install the wheel (not editable) into a fresh venv and run
# the commands from a folder outside the checkout: what a user of `pip install vidgen` gets.
# Takes about two minutes, most of it installing torch.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python3 -m venv "$work/build-env"
"$work/build-env/bin/pip" install -q build
# The wheel is built from the sdist, so both must carry the configs.
if ! "$work/build-env/bin/python" -m build --outdir "$work/dist" "$repo" >"$work/build.log" 2>&1; then
  cat "$work/build.log" >&2
  exit 1
fi

python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q -c "$repo/constraints.txt" "$work"/dist/*.whl

mkdir "$work/run" && cd "$work/run"
export PATH="$work/venv/bin:$PATH"
vidgen-prep synthetic --world bouncing_balls --out balls --episodes 6 --frames 12 --size 32
vidgen-prep info balls/train.h5 balls/val.h5 balls/test.h5
# Two optimizer steps of a small PredNet on the folder just made, then a rollout of it.
vidgen-train data=balls trainer=cpu debug=limit trainer.max_epochs=1 \
  trainer.limit_train_batches=2 trainer.limit_val_batches=1 trainer.limit_test_batches=1 \
  data.batch_size=2 model.net.stack_sizes=[3,8,16,32] model.net.r_stack_sizes=[3,8,16,32] \
  trainer.enable_progress_bar=false trainer.enable_model_summary=false
vidgen-rollout ckpt="$(ls logs/*/*/checkpoints/last.ckpt)" data=balls out=rollout.mp4 \
  context=4 horizon=4 clips=1
test -s rollout.mp4
# Every other command composes its config or parses its flags.
commands=$(python -c "from importlib.metadata import entry_points as e
print(*(s.name for s in e(group='console_scripts') if s.value.startswith('vidgen.')))")
for command in $commands; do
  "$command" --help >/dev/null
done
echo "wheel check passed: $commands ran from a folder outside the checkout"
