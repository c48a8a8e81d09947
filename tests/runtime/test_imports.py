"""The import graph: the runtime imports without torch or transformers and never imports upward.

edge_omd/apps/ (the CLI, the demo, its simulator) is the top of the graph: the only part of
edge_omd that may import the exporter (edge_omd_export, folder export/) or the benchmarks
(edge_omd_bench, folder bench/). Every other module of edge_omd is the runtime and imports none
of them, nor torch/transformers/onnx (checked on the source with ast, imports inside functions
and `importlib.import_module("...")` included, and by importing every runtime module in a fresh
interpreter). The tests import export/ and bench/ by their install names only.

Inside edge_omd the graph has no circle and keeps its layers (LAYERS): the storage
(edge_omd/store/ but its session) never reaches the model or the verbs; the session, which
replays journals onto the model, never reaches the verbs; the feature cache imports nothing of
edge_omd; only the Personalizer holds a session; linalg reaches no solver, the solvers' parts
(kernels, a prior's start, the load checks, the choice) no solver, and the sizing no model.
"""
import ast
import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

import edge_omd

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "edge_omd"
APPS = PKG / "apps"

#: modules the runtime must never import (a name or any submodule of it)
FORBIDDEN_IN_RUNTIME = ("edge_omd.apps", "edge_omd_export", "edge_omd_bench", "export", "bench",
                        "torch", "transformers", "onnx")
#: export/ and bench/ by folder name: they are installed as edge_omd_export / edge_omd_bench
FOLDER_NAMES = ("export", "bench")


def imported_modules(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module name `source` (the code of `module`) imports, anywhere in the file: `import
    a.b`, `from a import b` (a and a.b), relative imports resolved, import_module("a")."""
    found = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1])
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module
            found.add(name)
            found.update(f"{name}.{alias.name}" for alias in node.names if alias.name != "*")
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and ((isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                   or (isinstance(node.func, ast.Name)
                       and node.func.id in ("import_module", "__import__")))):
            found.add(node.args[0].value)
    return found


def forbidden(names, prefixes) -> list[str]:
    return sorted(n for n in names if any(n == p or n.startswith(p + ".") for p in prefixes))


def runtime_files() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py") if APPS not in p.parents)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def edge_omd_graph() -> dict[str, set[str]]:
    """module -> the edge_omd modules it imports, anywhere in its file (imports inside functions
    included), each import resolved to the module it names: `from a import b` is an edge to a.b
    if that is a module, else to a. A package's __init__ that runs first is not an edge (every
    module would then reach edge_omd/__init__.py, which imports the Personalizer)."""
    mods = {module_name(p): p for p in PKG.rglob("*.py")}

    def resolve(name: str) -> str:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name

    graph = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        out = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                out.update(resolve(a.name) for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[:len(parts) - node.level + 1] + [node.module or ""])
                    base = base.rstrip(".")
                out.update(f"{base}.{a.name}" if f"{base}.{a.name}" in mods else resolve(base)
                           for a in node.names)
            elif isinstance(node, ast.Call) and node.args \
                    and isinstance(node.args[0], ast.Constant) \
                    and isinstance(node.args[0].value, str) and "import" in ast.unparse(node.func):
                out.add(resolve(node.args[0].value))
        graph[name] = {m for m in out if m and m != name}
    return graph


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for m in graph.get(todo.pop(), ()):
            if m not in seen:
                seen.add(m)
                todo.append(m)
    return seen


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles: strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while not comp or comp[-1] != v:
                comp.append(stack.pop())
                on.discard(comp[-1])
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


#: Circles allowed in edge_omd's import graph: none. The test below fails while an entry
#: here is no circle any more.
KNOWN_CYCLES: list = []

_STORAGE = ["edge_omd.store", "edge_omd.store.base", "edge_omd.store.journal",
            "edge_omd.store.fair_queue", "edge_omd.store.locks", "edge_omd.store.sqlite",
            "edge_omd.store.folder", "edge_omd.store.folder_tx", "edge_omd.store.folder_names",
            "edge_omd.store.checkpoint_file"]
_VERBS = ["edge_omd.personalizer", "edge_omd.feature_cache", "edge_omd.strategies",
          "edge_omd.apps", "edge_omd.head.registry", "edge_omd.head.runner"]
_SOLVERS = ["edge_omd.solvers.base", "edge_omd.solvers.exact", "edge_omd.solvers.cg",
            "edge_omd.solvers.sketch", "edge_omd.solvers.diagonal"]
_SOLVER_PARTS = ["edge_omd.solvers.prior_start", "edge_omd.solvers.load_checks",
                 "edge_omd.solvers.exact_kernels", "edge_omd.solvers.mnl"]
#: module -> modules it must never reach, directly or through what it imports (a name covers
#: its submodules)
LAYERS = {
    **{m: ["edge_omd.store.session", "edge_omd.reward_model", "edge_omd.prior", *_VERBS]
       for m in _STORAGE},
    "edge_omd.store.session": _VERBS,
    "edge_omd.feature_cache": ["edge_omd"],
    # the shared kernels sit below every solver; the solvers' helper modules below the solvers
    # (solvers/base.py imports them), and the sizing below the model it sizes
    "edge_omd.linalg": ["edge_omd.solvers", "edge_omd.projection", "edge_omd.reward_model"],
    **{m: [*_SOLVERS, "edge_omd.reward_model"] for m in _SOLVER_PARTS},
    "edge_omd.sizing": ["edge_omd.reward_model", *_VERBS],
}


def test_the_graph_scanner_resolves_names_to_modules():
    g = edge_omd_graph()
    assert {"edge_omd.store", "edge_omd.store.session", "edge_omd.feature_cache"} <= \
        g["edge_omd.personalizer"]                      # a package and two modules
    assert "edge_omd.store.journal" in g["edge_omd.store.base"]          # from pkg import mod
    assert "edge_omd.store.sqlite" in g["edge_omd.store"]
    assert "edge_omd" not in g["edge_omd.store.base"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_edge_omd_has_no_import_circle():
    g = edge_omd_graph()
    found = cycles(g)
    assert [c for c in found if c not in KNOWN_CYCLES] == [], found
    stale = [c for c in KNOWN_CYCLES if c not in found]
    assert not stale, f"no longer a circle: delete {stale} from KNOWN_CYCLES"


def test_the_layers_never_import_upward():
    g = edge_omd_graph()
    for module in LAYERS:
        assert module in g, f"LAYERS names {module}, which is not a module of edge_omd"
    bad = {m: forbidden(reachable(g, m), banned) for m, banned in LAYERS.items()}
    bad = {m: hits for m, hits in bad.items() if hits}
    assert not bad, f"modules reaching a layer above them: {bad}"
    holders = sorted(m for m, deps in g.items() if "edge_omd.store.session" in deps)
    assert holders == ["edge_omd.personalizer"], holders


def test_the_scanner_sees_every_kind_of_import():
    src = ("import torch.nn\nfrom edge_omd import apps\nfrom ..apps.demo import main\n"
           "def f():\n    from edge_omd_bench.cli import main\n"
           "    importlib.import_module('transformers')\n    __import__('bench')\n")
    names = imported_modules(src, "edge_omd.head.runner")
    assert forbidden(names, FORBIDDEN_IN_RUNTIME) == [
        "bench", "edge_omd.apps", "edge_omd.apps.demo", "edge_omd.apps.demo.main",
        "edge_omd_bench.cli", "edge_omd_bench.cli.main", "torch.nn", "transformers"]
    assert forbidden(imported_modules("from edge_omd.head import runner\nimport numpy",
                                      "edge_omd.store"), FORBIDDEN_IN_RUNTIME) == []


def test_no_runtime_module_imports_the_apps_the_exporter_the_bench_or_torch():
    files = runtime_files()
    assert PKG / "reward_model.py" in files and PKG / "head" / "runner.py" in files
    assert not any(APPS in p.parents for p in files)
    bad = {}
    for path in files:
        names = imported_modules(path.read_text(encoding="utf-8"), module_name(path),
                                 path.name == "__init__.py")
        hits = forbidden(names, FORBIDDEN_IN_RUNTIME)
        if hits:
            bad[str(path.relative_to(ROOT))] = hits
    assert not bad, f"runtime modules importing upward or heavy modules: {bad}"


def test_no_test_imports_export_or_bench_by_folder_name():
    """tests/conftest.py puts the repo root on sys.path, so `import export` would work here
    and nowhere else; the tests use the install names edge_omd_export / edge_omd_bench."""
    bad = {}
    for path in sorted((ROOT / "tests").rglob("*.py")):
        names = imported_modules(path.read_text(encoding="utf-8"), module_name(path),
                                 path.name == "__init__.py")
        hits = forbidden(names, FOLDER_NAMES)
        if hits:
            bad[str(path.relative_to(ROOT))] = hits
    for folder in FOLDER_NAMES:      # nor do the packages themselves (absolute self-imports)
        for path in sorted((ROOT / folder).glob("*.py")):
            hits = forbidden(imported_modules(path.read_text(encoding="utf-8"), folder),
                             FOLDER_NAMES)
            if hits:
                bad[str(path.relative_to(ROOT))] = hits
    assert not bad, f"imports by folder name instead of edge_omd_export/edge_omd_bench: {bad}"


def test_the_install_names_point_at_this_checkout():
    """After the documented install (scripts/env.sh: `pip install --no-deps -e .`) the three
    packages and the console script are this checkout's; otherwise the suite fails here, loudly,
    instead of testing another copy or skipping."""
    for name, folder in (("edge_omd", "edge_omd"), ("edge_omd_export", "export"),
                         ("edge_omd_bench", "bench")):
        try:
            mod = __import__(name)
        except ImportError as exc:
            pytest.fail(f"{name} is not installed ({exc}); run `pip install --no-deps -e .` in "
                        f"{ROOT} (scripts/env.sh does it)")
        assert Path(mod.__file__).resolve().parent == ROOT / folder, \
            f"{name} is imported from {mod.__file__}, not from this checkout's {folder}/"
    scripts = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="console_scripts")
               if ep.name == "edge-omd"}
    assert scripts == {"edge-omd": "edge_omd.apps.cli:main"}, scripts


def test_the_package_exposes_the_public_names_only():
    tree = ast.parse((PKG / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:   # imports, __version__, __all__ and the lazy __getattr__: nothing else
        ok = (isinstance(node, (ast.Import, ast.ImportFrom))
              or (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))
              or (isinstance(node, ast.Assign) and len(node.targets) == 1
                  and getattr(node.targets[0], "id", None) in ("__all__", "__version__"))
              or (isinstance(node, ast.FunctionDef) and node.name == "__getattr__"))
        assert ok, f"edge_omd/__init__.py line {node.lineno} defines more than the public names"
        if isinstance(node, ast.ImportFrom):
            assert all(not a.name.startswith("_") for a in node.names), ast.unparse(node)
    assert len(edge_omd.__all__) == len(set(edge_omd.__all__))
    for name in edge_omd.__all__:
        assert not name.startswith("_") and getattr(edge_omd, name) is not None
    imported = {a.asname or a.name for n in tree.body if isinstance(n, ast.ImportFrom)
                for a in n.names}
    assert imported <= set(edge_omd.__all__), imported - set(edge_omd.__all__)
    assert set(edge_omd.__all__) - imported == {"FeatureHead"}    # the one lazy name
    with pytest.raises(AttributeError):
        edge_omd.no_such_name


CODE = """
import importlib, sys
import edge_omd
light = sorted(m for m in ("onnxruntime", "tokenizers") if m in sys.modules)
print("LIGHT", light)
from edge_omd import RewardModel, Personalizer, SQLiteStore, FolderStore, FeatureHead
runtime = sys.argv[1:]
for name in runtime:
    importlib.import_module(name)
print("IMPORTED", len(runtime), "edge_omd.head.runner" in runtime)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers", "onnx",
               "edge_omd_export", "edge_omd_bench") or m.startswith("edge_omd.apps"))
print("HEAVY", heavy)
"""


def test_runtime_imports_without_torch_or_transformers():
    runtime = [module_name(p) for p in runtime_files()]    # every module but edge_omd/apps/
    r = subprocess.run([sys.executable, "-c", CODE, *runtime], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert "LIGHT []" in r.stdout, r.stdout              # `import edge_omd`: numpy + numba only
    assert "IMPORTED" in r.stdout and " True" in r.stdout, r.stdout
    assert "HEAVY []" in r.stdout, r.stdout


def test_every_package_folder_is_installed():
    """pyproject's `packages` list names every package folder, so a non-editable install
    (a wheel) carries the same modules as the checkout; an editable install would hide a miss."""
    try:
        from tomllib import load                       # Python >= 3.11
        with open(ROOT / "pyproject.toml", "rb") as f:
            tool = load(f)["tool"]
    except ModuleNotFoundError:                        # 3.10: the build backend's reader
        from setuptools.config.pyprojecttoml import load_file
        tool = load_file(ROOT / "pyproject.toml")["tool"]
    listed = set(tool["setuptools"]["packages"])
    dirs = tool["setuptools"]["package-dir"]
    want = set()
    for name, folder in dirs.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            want.add(".".join((name, *rel)))
    assert listed == want, {"missing": sorted(want - listed), "extra": sorted(listed - want)}
    assert importlib.metadata.distribution("edge-omd").entry_points.select(
        group="console_scripts", name="edge-omd")
