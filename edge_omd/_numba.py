"""The one place where Numba flags are set (stumpy's config.py, pynndescent's signatures).

Every kernel of the runtime is declared with `kernel(signatures)`: explicit signatures (one
float32 and one float64 version, C-contiguous arrays), so a stream of updates can never trigger
a silent recompile, and compiled code is cached under NUMBA_CACHE_DIR when that is set.

fastmath: only re-association and contraction (FMA), so reductions vectorise. No `nnan`/`ninf`:
inputs are checked finite at the Python front, and the kernels themselves test for non-finite
results, which `nnan` would let the compiler delete.
"""
import os

import numba

FASTMATH = {"reassoc", "contract"}
# Caching writes beside the sources unless NUMBA_CACHE_DIR is set; we only cache when it is.
CACHE = bool(os.environ.get("NUMBA_CACHE_DIR"))
JIT_DISABLED = bool(int(os.environ.get("NUMBA_DISABLE_JIT", "0") or "0"))


def kernel(signatures):
    """`numba.njit` with the project's flags and explicit signatures."""
    return numba.njit(signatures, cache=CACHE, nogil=True, fastmath=FASTMATH,
                      error_model="numpy", boundscheck=False)


def both(template):
    """Expand a signature template with `F` into its float32 and float64 versions."""
    return [template.replace("F", "f4"), template.replace("F", "f8")]
