#!/usr/bin/env bash
# Lint, format check and the fast test suite (slow tests: add `-m slow` or `-m ""`).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/pytest -q -m "not slow" "$@"
