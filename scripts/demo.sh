#!/usr/bin/env bash
# The main job on a fresh machine: builds .venv if needed, then runs the offline demo.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/env.sh"
cd "$ROOT"
exec "$VENV_PY" -m edge_omd.apps.cli demo "$@"
