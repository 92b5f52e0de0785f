#!/usr/bin/env bash
# Create .venv and install vidgen with its development tools (torch 2.14.1, torchvision 0.29.1).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[dev]'
