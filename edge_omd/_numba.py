"""The one place where Numba flags are set (stumpy's config.py, pynndescent's signatures).

Every kernel of the runtime is declared with `kernel(signatures)`: an explicit list of
signatures, one float32 and one float64 version of each (C-contiguous arrays; `both(...,
readonly=...)` adds read-only variants of the arguments that may hold a caller's array, as
pynndescent declares them). Nothing is compiled or loaded at import, nor when a model is built:
each declared signature loads from the kernel cache (or compiles, on an empty cache) the first
time a call needs it, once per process (`_Lazy`), so a first update pays for the three kernels
it calls from Python, not for the twenty-odd of its solver (a kernel loaded from the cache
carries its callees' code; compiled, it loads their signatures first, as it types their
calls). New compiles are disabled on every kernel at all times otherwise, so a call with types
outside the lists fails loudly (TypeError) instead of compiling silently in the middle of a
stream. `ensure_compiled` loads a whole plan ahead of use (a population's start kernels).

No fastmath: every kernel rounds as its source reads, operation by operation, so the bits it
saves or returns are the same on every x86-64 CPU whatever vector width LLVM compiles for, and
the same as the NUMBA_DISABLE_JIT path's in float64 (docs/ALGORITHM.md, "Numerics"). With
`reassoc` the host's SIMD width decided the order of every vectorised sum (AVX-512 and AVX2
machines wrote different goldens) and `contract` fused multiply-adds where the CPU has FMA.
Element-wise loops still vectorise (each lane rounds as the scalar code would). A sum does not
(LLVM vectorises it only by reordering it), so the long ones are written with `lanes_dot`: LANES
partial sums in an explicit LLVM vector, combined in a fixed order, which every vector width
computes alike (AVX-512: one register per 8 lanes, AVX2: per 4, SSE2: per 2). The
transcendental functions are the project's own (linalg.exp, fdlibm's), not the C library's,
which glibc also picks per CPU.

The exceptions, by the rule of bench/kernels.py (issue 18, item 2: the machine-independent form
of a solver's update is kept only if it costs at most 10 % (exact, diagonal) or 30 % (cg, sketch)
more, the upper end of a 95% CI; exact, diagonal and the sketch missed, cg kept it): kernels
declared `per_cpu=True`, the exact and diagonal solvers' updates, are compiled with
FASTMATH_PER_CPU (reassociation and FMA contraction), and the sketch's shrink runs on LAPACK /
BLAS (`per_cpu_module`). Their states are bit for bit the same on one machine (a replay, a reload)
but across CPUs only to a tolerance (docs/ALGORITHM.md, "The same bits on every machine"). For
per-CPU kernels the old rule holds: never accumulate a float sum in a loop that also writes an
array (LLVM would version the loop on an alias check and sum in an order that depends on where
malloc put the arrays; tests/runtime/test_no_stale_reads.py).

Compiled code is cached in ONE folder shared by the library, the CLI and the scripts:
$NUMBA_CACHE_DIR if set, else `edge_omd.paths.cache_root()/numba` (~/.cache/edge_omd/numba).

Cache salting: Numba invalidates a cached kernel when ITS file changes, not when a kernel it
calls in another file does (solvers call linalg), so after an upgrade or an edit a stale
machine-code copy of an old linalg kernel could run. Our kernels are therefore cached in a
sub-folder named after a hash of every kernel source file: any change starts a fresh cache.
"""
import hashlib
import os

import numba
import numpy as np
from numba.core import sigutils
from numba.core import typing as nb_typing
from numba.core.caching import NullCache
from numba.core.compiler_lock import global_compiler_lock
from numba.core.registry import CPUDispatcher
from numba.core.typing import Signature

from edge_omd.paths import numba_cache_dir

FASTMATH = False  # see the module docstring: no reassociation, no contraction (FMA)
FASTMATH_PER_CPU = {"reassoc", "contract"}  # `kernel(per_cpu=True)` only (module docstring)
JIT_DISABLED = bool(int(os.environ.get("NUMBA_DISABLE_JIT", "0") or "0"))
_FLAGS = dict(nogil=True, error_model="numpy", boundscheck=False)


def _cache_root():
    """The kernel cache folder, or None (no caching: every process compiles) if not writable."""
    root = numba_cache_dir()
    try:
        os.makedirs(root, exist_ok=True)
    except OSError:
        return None
    return root if os.access(root, os.W_OK) else None


CACHE_ROOT = _cache_root()
CACHE = CACHE_ROOT is not None

_HERE = os.path.dirname(os.path.abspath(__file__))
_KERNEL_SOURCES = ["_numba.py", "linalg.py", "projection.py"] + [
    os.path.join("solvers", f) for f in sorted(os.listdir(os.path.join(_HERE, "solvers")))
    if f.endswith(".py")]


def _sources_hash():
    h = hashlib.sha256(numba.__version__.encode())
    for rel in _KERNEL_SOURCES:
        path = os.path.join(_HERE, rel)
        if os.path.exists(path):
            with open(path, "rb") as f:
                h.update(rel.encode() + b"\0" + f.read())
    return h.hexdigest()[:16]


SOURCES_HASH = _sources_hash()


#: Numba's own compiler lock, re-entrant: a load nests (compiling a caller types its callees,
#: which load then) and takes the same lock as every Numba compile, so two locks can never be
#: taken in opposite orders by two threads.
_LOCK = global_compiler_lock


class Kernel:
    """One declared kernel: its dispatcher and its signature lists keyed by dtype name
    ('float32', 'float64'; None for signatures without a float array, compiled with either).
    A list holds Signatures or their text, parsed when first needed (`_signature`): parsing
    every list at import cost more than loading the few kernels a first update runs."""

    def __init__(self, dispatcher, lists, group=None, per_cpu=False):
        self.dispatcher, self.lists, self.group, self.per_cpu = dispatcher, lists, group, per_cpu
        self.module = dispatcher.py_func.__module__
        self.fn_name = dispatcher.py_func.__name__
        self.name = f"{self.module}.{self.fn_name}"
        self.complete = False  # every declared signature loaded

    def declared(self, dtype=None):
        """The declared signatures for one dtype name (None: every dtype)."""
        for key, sigs in self.lists.items():
            if not all(isinstance(s, Signature) for s in sigs):
                self.lists[key] = [_signature(s) for s in sigs]
        if dtype is None:
            return [s for sigs in self.lists.values() for s in sigs]
        return self.lists.get(None, []) + self.lists.get(dtype, [])

    def load(self, dtype):
        """Load from the cache, or compile, every declared signature of `dtype` (a dtype name)
        not loaded yet (`ensure_compiled`: what calls would load one by one)."""
        with _LOCK:
            self._load(self.declared(dtype))

    def load_for(self, argtypes):
        """Load the declared signature that a call with `argtypes` (Numba types) runs, as Numba
        would pick it among the lists; nothing if none takes them (the call then fails with
        Numba's TypeError, as a call outside the lists always has)."""
        if self.complete:
            return
        disp = self.dispatcher
        with _LOCK:  # typing and the lazy parse of the lists, one thread at a time
            sig = disp.typingctx.resolve_overload(disp.py_func, self.declared(), list(argtypes),
                                                  {})
            if sig is not None:
                self._load([sig])

    def _load(self, sigs):
        disp = self.dispatcher
        with _LOCK:
            todo = [s for s in sigs if tuple(s.args) not in disp.overloads]
            if not todo:
                return
            if CACHE and isinstance(disp._cache, NullCache):
                _enable_cache(disp)
            disp._can_compile = True
            try:
                for sig in todo:  # a callee loads while the compiler types its call (_Lazy)
                    disp.compile(sig)
            finally:
                disp._can_compile = False
            self.complete = all(tuple(s.args) in disp.overloads for s in self.declared())


def _signature(spec):
    """A Signature from a declared entry: a Signature, a string, or `both`'s (string, the
    argument positions made read-only)."""
    if isinstance(spec, Signature):
        return spec
    text, readonly = (spec, ()) if isinstance(spec, str) else spec
    args, ret = sigutils.normalize_signature(text)
    args = [a.copy(readonly=True) if i in readonly else a for i, a in enumerate(args)]
    return ret(*args)


def _enable_cache(disp):
    # The cache locator reads config.CACHE_DIR when caching is enabled; point it at our salted
    # folder for exactly that moment (under _LOCK), then give the user's setting back.
    saved = numba.config.CACHE_DIR
    numba.config.CACHE_DIR = os.path.join(CACHE_ROOT, f"edge_omd-{SOURCES_HASH}")
    try:
        disp.enable_caching()
    finally:
        numba.config.CACHE_DIR = saved


class _Lazy(CPUDispatcher):
    """The dispatcher of a kernel: compiling is switched off (`_can_compile` False) except while
    `Kernel._load` runs, so a call outside the declared lists raises TypeError; a declared
    signature loads (from the cache, or compiles) the first time a call needs it, from Python
    (Numba calls `_search_new_conversions` when no loaded signature takes the arguments) or
    from a kernel being compiled (`get_call_template` types the call)."""

    edge_kernel = None  # its Kernel, set by `kernel`

    def _search_new_conversions(self, *args, **kws):
        self.edge_kernel.load_for([self.typeof_pyval(a) for a in args])
        return super()._search_new_conversions(*args, **kws)

    def get_call_template(self, args, kws):
        # Numba's own, except that it loads the declared list instead of compiling `args`
        pysig, args = self._compiler.fold_argument_types(args, kws)
        self.edge_kernel.load_for(args)
        name = self.py_func.__name__
        template = nb_typing.make_concrete_template(f"CallTemplate({name})", key=name,
                                                    signatures=self.nopython_signatures)
        return template, pysig, args, {}

    def _compile_for_args(self, *args, **kws):
        # Reached only while another thread's `Kernel._load` has compiling switched on and no
        # loaded signature takes these arguments exactly: wait for that load, then dispatch
        # again (with compiling off: the declared lists or a TypeError, never a new compile).
        with _LOCK:
            pass
        return self


#: Every kernel, in declaration order (callees before callers).
KERNELS: list = []
#: The modules holding a kernel declared per_cpu (their states agree across CPUs to a tolerance)
PER_CPU_MODULES: set = set()


def per_cpu_module(name):
    """Declare that module `name` computes state bytes per CPU outside its kernels too (BLAS /
    LAPACK): its solver's states agree across CPUs to a tolerance (PER_CPU_MODULES)."""
    PER_CPU_MODULES.add(name)


def kernel(signatures, group=None, per_cpu=False):
    """`numba.njit` with the project's flags and an explicit signature list (see `both`),
    loaded lazily per dtype (`_Lazy`).

    `group`: None for the kernels every model of the module needs; "choice" for those only
    `learn_choice` runs, "start" for a population's start: `ensure_compiled` loads a group's
    plan ahead of use. `per_cpu`: compiled with FASTMATH_PER_CPU, its bits the same on one
    machine only (module docstring)."""
    lists = {}
    for s in signatures:
        key, sig = s if isinstance(s, tuple) else (None, s)
        lists.setdefault(key, []).append(sig)

    def decorate(fn):
        if per_cpu:
            PER_CPU_MODULES.add(fn.__module__)
        if JIT_DISABLED:
            return fn
        flags = dict(_FLAGS, fastmath=FASTMATH_PER_CPU if per_cpu else FASTMATH)
        disp = _Lazy(py_func=fn, locals={}, targetoptions=dict(nopython=True, **flags))
        disp._can_compile = False  # only Kernel._load compiles, and only declared signatures
        disp.edge_kernel = Kernel(disp, lists, group, per_cpu)
        KERNELS.append(disp.edge_kernel)
        return disp
    return decorate


def _kernels_called_by(obj):
    """The kernels that the code of `obj` (a function, class, module or kernel; nested functions,
    methods and comprehensions included) calls by name: `_hv(...)` resolved in its globals, or
    `linalg.sigmoid(...)` through a module it holds. Resolved through the objects, not by
    name alone, so `np.diagonal` never pulls in a kernel of edge_omd.solvers.diagonal."""
    import types
    by_id = {id(k.dispatcher): k for k in KERNELS}
    found, todo = set(), []
    if isinstance(obj, types.ModuleType):
        todo += [v for v in vars(obj).values() if getattr(v, "__module__", None) == obj.__name__]
    else:
        todo.append(obj)
    while todo:
        item = todo.pop()
        o = getattr(item, "py_func", item) if id(item) in by_id else item
        if isinstance(o, type):
            todo += list(vars(o).values())
            continue
        if isinstance(o, (staticmethod, classmethod)):
            o = o.__func__
        if isinstance(o, property):
            todo += [f for f in (o.fget, o.fset) if f is not None]
            continue
        if not isinstance(o, types.FunctionType):
            continue
        names, codes = set(), [o.__code__]
        while codes:
            c = codes.pop()
            names.update(c.co_names)
            codes += [x for x in c.co_consts if isinstance(x, types.CodeType)]
        for n in names:
            v = o.__globals__.get(n)
            if id(v) in by_id:
                found.add(by_id[id(v)])
            elif isinstance(v, types.ModuleType):
                attrs = vars(v)
                found.update(by_id[id(attrs[a])] for a in names if id(attrs.get(a)) in by_id)
                for a in names:
                    found.update(_marked(attrs.get(a), by_id))
            else:
                found.update(_marked(v, by_id))
        found.discard(None)
    return found


def calls(*callees):
    """Mark a plain Python helper with the kernels it calls (or marked helpers): `plan` finds
    kernels by name in code, and does not look inside the helpers that code calls."""
    def mark(fn):
        fn.kernel_callees = callees
        return fn
    return mark


def _marked(fn, by_id):
    """The kernels a helper marked with `calls` reaches ({None} if it is not marked)."""
    out = set()
    for c in getattr(fn, "kernel_callees", ()):
        out.update([by_id[id(c)]] if id(c) in by_id else _marked(c, by_id))
    return out or {None}


def plan(*modules, group=None):
    """The kernels a caller made of `modules` needs, in declaration order (callees first): every
    kernel of `group` defined in them or called by their code, and transitively every kernel
    those call (whatever its group), so a solver never compiles linalg kernels it does not use
    and a model compiles its choice kernels only at its first choice."""
    import sys
    wanted = {k for k in KERNELS if k.module in modules}
    for m in modules:
        wanted |= _kernels_called_by(sys.modules[m])
    wanted = {k for k in wanted if k.group == group}
    frontier = list(wanted)
    while frontier:
        new = set()
        for k in frontier:
            new |= _kernels_called_by(k.dispatcher) - wanted
        wanted |= new
        frontier = list(new)
    return [k for k in KERNELS if k in wanted]


_ENSURED = set()  # (dtype name, modules, group) whose whole plan is loaded


def ensure_compiled(dtype, *modules, group=None):
    """Load now (from the cache, or compile) the declared `dtype` signatures of every kernel of
    `group` that code in `modules` (module names, e.g. "edge_omd.solvers.exact") defines or
    calls, and of their callees, once per process, callees first: what their first calls would
    load one by one. Cheap when done."""
    key = np.dtype(dtype).name  # "float32" / "float64", from a dtype, a type or a name
    if JIT_DISABLED or (key, modules, group) in _ENSURED:
        return  # the plan walks code objects (ms): once per (dtype, modules, group) and process
    with _LOCK:
        for k in plan(*modules, group=group):
            k.load(key)
        _ENSURED.add((key, modules, group))


def both(template, readonly=(), any_dtype=False):
    """Expand a signature template with `F` into its float32 and float64 versions; the argument
    positions in `readonly` get an extra read-only variant each (caller-owned arrays). With
    `any_dtype` both versions are compiled whatever the model's dtype (kernels that check a
    caller's input, whose dtype need not be the state's). Parsed when first loaded
    (`_signature`)."""
    out = []
    for F, key in (("f4", "float32"), ("f8", "float64")):
        variants = [()]
        for i in readonly:
            variants += [v + (i,) for v in variants]
        out += [(None if any_dtype else key, (template.replace("F", F), v)) for v in variants]
    return out


# ---------------------------------------------------------------- fixed-lane sums
#: Partial sums of `lanes_dot`: element i goes to lane i mod LANES (a multiple of 8 fills AVX-512
#: registers; 16 keeps two chains of adds in flight there and four on AVX2).
LANES = 16


def _lanes_dot_py(a, b):
    """lanes_dot in Python (the NUMBA_DISABLE_JIT path), the same operations in the same order."""
    n = a.shape[0]
    nb = n // LANES
    p = [0.0] * LANES
    for k in range(nb):
        for lane in range(LANES):
            p[lane] += float(a[k * LANES + lane]) * float(b[k * LANES + lane])
    while len(p) > 1:
        p = [p[2 * k] + p[2 * k + 1] for k in range(len(p) // 2)]
    tail = 0.0
    for i in range(nb * LANES, n):
        tail += float(a[i]) * float(b[i])
    return p[0] + tail


def _lanes_dot_intrinsic():
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils
    from numba.extending import intrinsic

    def vector_of(t):
        return (isinstance(t, types.Array) and t.ndim == 1 and t.layout == "C"
                and t.dtype in (types.float32, types.float64))

    @intrinsic
    def lanes_dot(typingctx, a, b):
        if not (vector_of(a) and vector_of(b)):
            return None

        def codegen(context, builder, sig, args):
            f64 = ir.DoubleType()
            vec = ir.VectorType(f64, LANES)
            arrs = [context.make_array(t)(context, builder, v) for t, v in zip(sig.args, args)]
            n = builder.extract_value(arrs[0].shape, 0)
            intp = n.type

            def load(k, i, lanes):
                t, arr = sig.args[k], arrs[k]
                ptr = builder.gep(arr.data, [i])
                if lanes:
                    elt = context.get_data_type(t.dtype)
                    ptr = builder.bitcast(ptr, ir.VectorType(elt, LANES).as_pointer())
                v = builder.load(ptr, align=t.dtype.bitwidth // 8)
                if t.dtype == types.float32:
                    v = builder.fpext(v, vec if lanes else f64)
                return v

            nb = builder.udiv(n, ir.Constant(intp, LANES))
            acc = cgutils.alloca_once_value(builder, ir.Constant(vec, [0.0] * LANES))
            with cgutils.for_range(builder, nb) as loop:  # lane l: sum over i = l (mod LANES)
                i = builder.mul(loop.index, ir.Constant(intp, LANES))
                prod = builder.fmul(load(0, i, True), load(1, i, True))
                builder.store(builder.fadd(builder.load(acc), prod), acc)
            v = builder.load(acc)
            part = [builder.extract_element(v, ir.Constant(ir.IntType(32), k))
                    for k in range(LANES)]
            while len(part) > 1:  # the fixed pairwise tree of _lanes_dot_py
                part = [builder.fadd(part[2 * k], part[2 * k + 1]) for k in range(len(part) // 2)]
            tail = cgutils.alloca_once_value(builder, ir.Constant(f64, 0.0))
            one = ir.Constant(intp, 1)
            with cgutils.for_range_slice(builder, builder.mul(nb, ir.Constant(intp, LANES)), n,
                                         one, inc=True) as (i, _):
                prod = builder.fmul(load(0, i, False), load(1, i, False))
                builder.store(builder.fadd(builder.load(tail), prod), tail)
            return builder.fadd(part[0], builder.load(tail))

        return types.float64(a, b), codegen

    return lanes_dot


#: sum_i a_i b_i of two 1-d C-contiguous float32/float64 arrays (mixed allowed; the length is
#: a's), in float64: LANES partial sums (lane l takes i = l mod LANES in order), combined by a
#: fixed pairwise tree, then the tail (i >= LANES * (n // LANES)) added in order. Never fused
#: (no FMA): the same bits on every CPU and vector width, and in the NUMBA_DISABLE_JIT path.
#: Callable inside kernels only (an intrinsic); in Python, call linalg.dot.
lanes_dot = _lanes_dot_py if JIT_DISABLED else _lanes_dot_intrinsic()
