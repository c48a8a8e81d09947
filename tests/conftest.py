"""Suite-wide rules: naive twins importable as `tests.naive`, no silent skips, and the tiny
exported heads shared by tests/head, tests/export, tests/bench and tests/docs.

A skipped test hides a broken install (a missing optional dependency, a data folder not found),
so every skip is turned into a failure unless its reason is listed in ALLOWED_SKIPS below: the
one place that says which tests may legitimately not run on a given machine. `pytest -rs`
prints each allowed skip with its reason. Tests that cannot run without compiled kernels are
marked `jit` and deselected (not skipped) in the NUMBA_DISABLE_JIT pass of scripts/test.sh.

Which tests the NUMBA_DISABLE_JIT pass (pass 2 of scripts/test.sh) runs, by one rule: those
marked `kernels`. Every test under KERNEL_FOLDERS gets the mark here (tests/runtime: Algorithm
1, the solvers, MNL, linalg, the projection, numerics, the state format: the code whose bodies
are Numba kernels, checked against tests/naive.py); a test elsewhere opts in with
`pytest.mark.kernels` only when its subject is what a kernel computes (tests/property/test_verbs.py
and test_regressions.py: hostile inputs straight into RewardModel's kernels). Everything else
runs once, compiled, in pass 1, whose line coverage is combined with pass 2's. Tests marked
`jit` or `slow` stay out of pass 2 whatever their folder.
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: folders of tests/ whose every test is marked `kernels` (see the module docstring)
KERNEL_FOLDERS = ("runtime",)

#: reason prefix -> why it is allowed. Nothing else may skip.
ALLOWED_SKIPS = {
    "no GPU/NPU provider usable here": "the GPU/NPU provider tests need such a machine; the CPU "
                                       "fallback is tested everywhere",
}


def pytest_configure(config):
    # The SDK's old names (edge_omd/_deprecated.py) are errors when the repository's own code
    # calls them; a test of an alias expects its warning (pytest.warns).
    config.addinivalue_line("filterwarnings", "error:edge-omd deprecated:DeprecationWarning")


def _reason(longrepr) -> str:
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


def _forbid_skip(rep) -> None:
    if not rep.skipped or hasattr(rep, "wasxfail"):
        return
    reason = _reason(rep.longrepr)
    if any(allowed in reason for allowed in ALLOWED_SKIPS):
        return
    rep.outcome = "failed"
    rep.longrepr = (f"skipped without an allowed reason: {reason}\n(a missing dependency or data "
                    "folder is a failure; allowed skips are listed in tests/conftest.py)")


def pytest_collection_modifyitems(config, items):
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    for item in items:
        rel = os.path.relpath(str(item.path), tests_dir)
        if rel.split(os.sep)[0] in KERNEL_FOLDERS:
            item.add_marker(pytest.mark.kernels)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _forbid_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _forbid_skip(outcome.get_result())


# ----------------------------------------------------------------------------- tiny heads
# Tiny checkpoints exported once per session and shared by every folder that needs a real ONNX
# head (no download: tests/export/_tiny.py builds random-weight models).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory):
    """arch -> checkpoint folder (built lazily, once)."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from tests.export._tiny import make_checkpoint
    root = tmp_path_factory.mktemp("ckpt")
    made = {}

    def get(arch):
        if arch not in made:
            made[arch] = make_checkpoint(arch, str(root / arch))
        return made[arch]
    return get


@pytest.fixture(scope="session")
def tiny_head(tiny_ckpt, tmp_path_factory):
    """(arch, variant, normalize) -> exported head folder (exported once per key)."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from edge_omd_export import export_model   # ImportError, never a skip, without the install
    root = tmp_path_factory.mktemp("heads")
    made = {}

    def get(arch, variant="fp32", normalize=True, **kw):
        key = (arch, variant, normalize, tuple(sorted(kw.items())))
        if key not in made:
            out = root / f"{arch}-{variant}-{int(normalize)}-{len(made)}"
            if variant == "qdq":
                from tests.export._tiny import CORPUS
                kw.setdefault("calibration_texts", CORPUS)
            made[key] = str(export_model(tiny_ckpt(arch), out, variant=variant,
                                         normalize=normalize, progress=False, **kw))
        return made[key]
    return get
