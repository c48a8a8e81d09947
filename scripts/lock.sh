#!/usr/bin/env bash
# Refreshes requirements.lock: every package, direct and transitive, pinned by pip-tools'
# pip-compile (pip's own resolver) from pyproject.toml's ranges with all extras. Run it, then
# `bash scripts/test.sh` on a fresh clone, and commit the lock only if the suite is green:
#     bash scripts/lock.sh            (UPGRADE=1 bash scripts/lock.sh to refresh every pin)
# The lock is what scripts/env.sh installs; library users still get pyproject's ranges.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOL="$(mktemp -d)"
trap 'rm -rf "$TOOL"' EXIT
"${PYTHON:-python3}" -m venv "$TOOL/venv"
"$TOOL/venv/bin/python" -m pip install -q --disable-pip-version-check "pip-tools==7.6.2"
cd "$ROOT"
# pip-compile keeps the pins already in its output file: seed it with the current lock so adding
# a dependency changes nothing else. UPGRADE=1 re-resolves every pin to the newest allowed.
if [ -z "${UPGRADE:-}" ]; then grep -v '^#' requirements.lock > "$TOOL/lock.txt"; fi
# --no-emit-*: the lock names packages and versions only, never this machine's index paths.
"$TOOL/venv/bin/pip-compile" --quiet --no-header --strip-extras --no-emit-index-url --no-emit-find-links \
  --extra export --extra demo --extra bench --extra dev --extra fleet -o "$TOOL/lock.txt" pyproject.toml
{
  echo "# Pinned environment the test suite passed with. Regenerate: bash scripts/lock.sh"
  echo "# Installed by scripts/env.sh (pip install -r, then the project itself with --no-deps)."
  # The project's own self-referencing extras line (an absolute file: URL) is not a dependency.
  grep -v '^edge-omd' "$TOOL/lock.txt"
} > "$ROOT/requirements.lock"
echo "[lock] wrote $ROOT/requirements.lock ($(grep -c '==' "$ROOT/requirements.lock") pins)"
