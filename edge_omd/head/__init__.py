"""The feature head: phi(x, a) from an exported ONNX head folder, and its identity.

    runner.py    FeatureHead (onnxruntime + tokenizers, imported only in `FeatureHead.open`)
    manifest.py  the head-folder format and the fingerprint: public API, used by the exporter
    tokenize.py  text -> padded token arrays (template, truncation, padding)
    binding.py   the one check that a reward-model state may be used with a head

Importing this package imports nothing: `from edge_omd.head import FeatureHead` loads the
runner on first use, so `import edge_omd` stays numpy + numba only.
"""


def __getattr__(name):
    if name == "FeatureHead":
        from edge_omd.head.runner import FeatureHead
        return FeatureHead
    raise AttributeError(f"module 'edge_omd.head' has no attribute {name!r}")
