#!/usr/bin/env bash
# Create .venv and install vidgen (editable) with every extra and its development tools, at
# the torch/torchvision versions pinned in constraints.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -c constraints.txt -e '.[dev,slurm,tensorboard]'
