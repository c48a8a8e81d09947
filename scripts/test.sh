#!/usr/bin/env bash
# The whole test suite, on a fresh machine: builds .venv if needed, then runs pytest twice:
# once with the Numba kernels compiled, once with NUMBA_DISABLE_JIT=1 (all but exporter/slow tests)
# (the pure-Python path of every kernel must stay alive and correct).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/env.sh"
cd "$ROOT"
"$VENV_PY" -m pytest -q -p no:cacheprovider "$@" tests
echo "[test] again with NUMBA_DISABLE_JIT=1: the pure-Python path of every kernel (all but the exporter and slow tests)"
NUMBA_DISABLE_JIT=1 "$VENV_PY" -m pytest -q -p no:cacheprovider -m "not slow and not export" tests
