"""Where edge-omd keeps files it can rebuild: one cache root for compiled kernels and heads.

    cache_root()        $EDGE_OMD_CACHE, else $XDG_CACHE_HOME/edge_omd, else ~/.cache/edge_omd
    numba_cache_dir()   $NUMBA_CACHE_DIR, else cache_root()/numba   (compiled kernels)
    heads_dir()         cache_root()/heads                          (heads the demo exports)

The library, the `edge-omd` CLI and the scripts all use these, so a kernel compiled by one is
reused by the others. Everything here may be deleted at any time; it is rebuilt on demand.
"""
import os
from pathlib import Path


def cache_root() -> Path:
    env = os.environ.get("EDGE_OMD_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "edge_omd"


def numba_cache_dir() -> str:
    return os.environ.get("NUMBA_CACHE_DIR") or str(cache_root() / "numba")


def heads_dir() -> Path:
    return cache_root() / "heads"
