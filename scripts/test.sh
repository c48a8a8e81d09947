#!/usr/bin/env bash
# The whole test suite, on a fresh machine: builds .venv if needed (scripts/env.sh), then runs
# pytest twice and ALWAYS both passes:
#   1. with the Numba kernels compiled (every test);
#   2. with NUMBA_DISABLE_JIT=1, the pure-Python path of every kernel (all but the exporter,
#      slow, jit-only and Java tests), under coverage.py: line coverage of edge_omd/ is printed
#      and must stay >= COVERAGE_FLOOR.
# Prints one summary line per pass and exits non-zero if either failed. Extra arguments go to
# both pytest runs (e.g. -k name). Skips are failures unless listed in tests/conftest.py.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/env.sh" || exit 1
set +e  # env.sh sets -e: a failed pass must not stop the other one
cd "$ROOT"
COVERAGE_FLOOR=82  # measured 84 % (2026-11-29); raise it as coverage grows, never lower it
LOGDIR="$(mktemp -d)"
trap 'rm -rf "$LOGDIR"' EXIT

echo "[test] pass 1/2: compiled kernels"
"$VENV_PY" -m pytest -q -rfEs -p no:cacheprovider "$@" tests 2>&1 | tee "$LOGDIR/pass1.log"
rc1=${PIPESTATUS[0]}

echo "[test] pass 2/2: NUMBA_DISABLE_JIT=1 (pure-Python kernels), with line coverage of edge_omd/"
NUMBA_DISABLE_JIT=1 "$VENV_PY" -m coverage run --data-file="$LOGDIR/.coverage" --source=edge_omd \
  -m pytest -q -rfEs -p no:cacheprovider -m "not slow and not export and not jit and not java" "$@" tests \
  2>&1 | tee "$LOGDIR/pass2.log"
rc2=${PIPESTATUS[0]}
"$VENV_PY" -m coverage report --data-file="$LOGDIR/.coverage" --skip-covered --sort=cover \
  > "$LOGDIR/cov.txt" 2>&1
cov=$(awk '/^TOTAL/ {gsub("%", "", $NF); print $NF}' "$LOGDIR/cov.txt")
tail -n 25 "$LOGDIR/cov.txt"

summary() { grep -E "[0-9]+ (passed|failed|error)" "$1" | tail -n 1 | sed 's/=//g; s/^ *//; s/ *$//'; }
echo
echo "[test] pass 1 (compiled):          $(summary "$LOGDIR/pass1.log") -> exit $rc1"
echo "[test] pass 2 (NUMBA_DISABLE_JIT): $(summary "$LOGDIR/pass2.log") -> exit $rc2"
rc3=0
if [ -z "$cov" ]; then
  echo "[test] coverage of edge_omd/: not measured"; rc3=1
elif awk -v c="$cov" -v f="$COVERAGE_FLOOR" 'BEGIN {exit !(c < f)}'; then
  echo "[test] coverage of edge_omd/ (pass 2): ${cov}% is BELOW the floor ${COVERAGE_FLOOR}%"; rc3=1
else
  echo "[test] coverage of edge_omd/ (pass 2): ${cov}% (floor ${COVERAGE_FLOOR}%)"
fi
[ "$rc1" -eq 0 ] && [ "$rc2" -eq 0 ] && [ "$rc3" -eq 0 ]
