#!/usr/bin/env bash
# The GPU checks of issue 23 item 3, for a session that has a CUDA machine (none here so far:
# fp16 on CUDA and QDQ on a QNN-style provider are untested on this project's machines).
#     bash scripts/gpu_check.sh [OUT_DIR]
# 1. the machine: GPU, driver, the providers the installed onnxruntime has and can run;
# 2. the provider tests, with skip reasons: on a usable GPU the one allowed skip
#    (test_gpu_providers_only_where_present) must turn into a pass;
# 3. MiniLM fp32 and fp16 heads on CUDA next to fp32 on the CPU (ms per answer, cosine).
# Put the figures printed here in the README ("Execution providers") with the card's name.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-${OUT:-$ROOT/gpu-check}}"
mkdir -p "$OUT"
source "$ROOT/scripts/env.sh"
cd "$ROOT"
{
  nvidia-smi || echo "nvidia-smi: not found"
  "$VENV_PY" -c "import onnxruntime as o; print('onnxruntime', o.__version__, o.get_available_providers())"
  "$VENV_PY" -c "from edge_omd.head.runner import choose_providers, PROVIDER_PREFERENCE; print('usable:', choose_providers(PROVIDER_PREFERENCE))"
} 2>&1 | tee "$OUT/machine.txt"
"$VENV_PY" -m pytest tests/head/test_providers.py \
  tests/export/test_export_tiny.py::test_gpu_providers_only_where_present \
  -q -rs -p no:cacheprovider 2>&1 | tee "$OUT/provider-tests.txt"
"$VENV_PY" -m edge_omd_bench.head --provider CUDAExecutionProvider --clicks 16 --rounds 5 \
  --work "$OUT/heads" --json "$OUT/head-cuda.json" 2>&1 | tee "$OUT/head-cuda.txt"
