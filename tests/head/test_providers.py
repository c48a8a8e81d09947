"""Provider choice: quiet and correct. On a machine without a usable GPU, opening a head with the
default preference prints nothing at warning level or above (onnxruntime logs from C++, so we
read what reaches file descriptor 2 of a child process) and runs on the CPU provider; the
chosen provider is the first usable one of the documented order."""
import os
import subprocess
import sys

import pytest

from edge_omd.head import runner
from edge_omd.head.runner import PROVIDER_PREFERENCE, choose_providers

pytestmark = pytest.mark.export

CHILD = r"""
import logging, sys, warnings
warnings.simplefilter("always")
logging.basicConfig(level=logging.WARNING)
from edge_omd import FeatureHead
head = FeatureHead.open(sys.argv[1])
phi = head.features("How do I boil an egg?", ["Boil it nine minutes.", "Fry it."])
print("PROVIDER", head.provider, phi.shape)
"""


def test_default_open_is_quiet_and_picks_the_first_usable_provider(tiny_head):
    folder = tiny_head("bert")
    r = subprocess.run([sys.executable, "-c", CHILD, folder], capture_output=True, text=True,
                       timeout=300, env=dict(os.environ))
    assert r.returncode == 0, r.stderr
    expected = choose_providers(PROVIDER_PREFERENCE)[0]
    assert f"PROVIDER {expected} (2, " in r.stdout
    noise = [ln for ln in (r.stderr + r.stdout).splitlines()
             if any(tag in ln for tag in ("[E:", "[W:", "EP Error", "Falling back", "WARNING",
                                          "Error", "error"))]
    assert noise == [], noise


def test_unusable_providers_are_dropped_before_onnxruntime_tries_them(monkeypatch):
    import onnxruntime as ort
    monkeypatch.setattr(ort, "get_available_providers",
                        lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider",
                                 "XnnpackExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(runner, "_unusable",
                        lambda _ort, name: "no CUDA driver or device" if "Tensorrt" in name else None)
    assert choose_providers(PROVIDER_PREFERENCE) == [
        "CUDAExecutionProvider", "XnnpackExecutionProvider", "CPUExecutionProvider"]
    # a provider this onnxruntime lacks is skipped; CPU is always last, never twice
    assert choose_providers(["QNNExecutionProvider", "CPUExecutionProvider"]) == ["CPUExecutionProvider"]


def test_cuda_probe_matches_the_machine():
    import onnxruntime as ort
    why = runner._unusable(ort, "CUDAExecutionProvider")
    if runner._cuda_devices() == 0:
        assert why == "no CUDA driver or device"
    else:  # a GPU machine: usable, or the dlopen error of a missing CUDA library
        assert why is None or ".so" in why or ".dll" in why
