"""Session fixtures: tiny checkpoints exported once and shared by the export tests.

The exporter is imported by its install name `edge_omd_export` (folder export/); without the
documented install these tests fail here, loudly, instead of skipping.
"""
import importlib.util
import os

import pytest

if importlib.util.find_spec("edge_omd_export") is None:
    raise ImportError("edge_omd_export (the repo's export/ folder) is not installed: run "
                      "`pip install --no-deps -e .` in the checkout (scripts/env.sh does it)")

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
    from edge_omd_export import export_model
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
