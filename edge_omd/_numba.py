"""The one place where Numba flags are set (stumpy's config.py, pynndescent's signatures).

Every kernel of the runtime is declared with `kernel(signatures)`: explicit signatures (one
float32 and one float64 version, C-contiguous arrays), so a stream of updates can never trigger
a silent recompile, and compiled code is cached (see `_cache_root`).

fastmath: only re-association and contraction (FMA), so reductions vectorise. No `nnan`/`ninf`:
inputs are checked finite at the Python front, and the kernels themselves test for non-finite
results, which `nnan` would let the compiler delete.

Cache salting: Numba invalidates a cached kernel when ITS file changes, not when a kernel it
calls in another file does (solvers call linalg), so after an upgrade or an edit a stale
machine-code copy of an old linalg kernel could run. Our kernels are therefore cached in a
sub-folder named after a hash of every kernel source file: any change starts a fresh cache.
"""
import hashlib
import os

import numba

FASTMATH = {"reassoc", "contract"}
JIT_DISABLED = bool(int(os.environ.get("NUMBA_DISABLE_JIT", "0") or "0"))


def _cache_root():
    """Where compiled kernels are cached: $NUMBA_CACHE_DIR if set, else the user's cache folder
    ($XDG_CACHE_HOME or ~/.cache)/edge_omd/numba; never beside the installed sources (Numba's
    default). None (no caching: every process compiles, ~10 s) if no such folder is writable."""
    root = os.environ.get("NUMBA_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "edge_omd", "numba")
    try:
        os.makedirs(root, exist_ok=True)
    except OSError:
        return None
    return root if os.access(root, os.W_OK) else None


CACHE_ROOT = _cache_root()
CACHE = CACHE_ROOT is not None

_HERE = os.path.dirname(os.path.abspath(__file__))
_KERNEL_SOURCES = ["_numba.py", "linalg.py"] + [
    os.path.join("solvers", f) for f in sorted(os.listdir(os.path.join(_HERE, "solvers")))
    if f.endswith(".py")]


def _sources_hash():
    h = hashlib.sha256(numba.__version__.encode())
    for rel in _KERNEL_SOURCES:
        with open(os.path.join(_HERE, rel), "rb") as f:
            h.update(rel.encode() + b"\0" + f.read())
    return h.hexdigest()[:16]


SOURCES_HASH = _sources_hash()


def kernel(signatures):
    """`numba.njit` with the project's flags and explicit signatures."""
    def decorate(fn):
        if not CACHE:
            return numba.njit(signatures, cache=False, nogil=True, fastmath=FASTMATH,
                              error_model="numpy", boundscheck=False)(fn)
        # The cache locator reads config.CACHE_DIR when the dispatcher is made; point it at our
        # salted folder for exactly that moment, then give the user's setting back.
        saved = numba.config.CACHE_DIR
        numba.config.CACHE_DIR = os.path.join(CACHE_ROOT, f"edge_omd-{SOURCES_HASH}")
        try:
            return numba.njit(signatures, cache=True, nogil=True, fastmath=FASTMATH,
                              error_model="numpy", boundscheck=False)(fn)
        finally:
            numba.config.CACHE_DIR = saved
    return decorate


def both(template):
    """Expand a signature template with `F` into its float32 and float64 versions."""
    return [template.replace("F", "f4"), template.replace("F", "f8")]
