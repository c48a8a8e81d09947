"""Suite-wide rules: naive twins importable as `tests.naive`, and no silent skips.

A skipped test hides a broken install (a missing optional dependency, a data folder not found),
so every skip is turned into a failure unless its reason is listed in ALLOWED_SKIPS below: the
one place that says which tests may legitimately not run on a given machine. `pytest -rs`
prints each allowed skip with its reason. Tests that cannot run without compiled kernels are
marked `jit` and deselected (not skipped) in the NUMBA_DISABLE_JIT pass of scripts/test.sh.
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

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


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _forbid_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _forbid_skip(outcome.get_result())
