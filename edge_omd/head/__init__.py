"""The feature head: phi(x, a) from an exported ONNX head folder, and its identity.

    runner.py    FeatureHead (onnxruntime + tokenizers, imported only in `FeatureHead.open`)
    manifest.py  the head-folder format and the fingerprint: public API, used by the exporter
    tokenize.py  text -> padded token arrays (template, truncation, padding)
    binding.py   the one check that a reward-model state may be used with a head
    protocol.py  the head protocol the Personalizer needs; ArrayHead for features the app
                 computes itself (e.g. pooled hidden states of its own LLM)
    registry.py  HeadRegistry: heads by fingerprint, so stored users keep the head their
                 state is bound to when the default head changes (migration)

Importing this package imports nothing: `from edge_omd.head import FeatureHead` loads the
runner on first use, so `import edge_omd` stays numpy + numba only.
"""


def __getattr__(name):
    if name == "FeatureHead":
        from edge_omd.head.runner import FeatureHead
        return FeatureHead
    if name in ("ArrayHead", "HeadProtocol"):
        from edge_omd.head import protocol
        return getattr(protocol, name)
    if name == "HeadRegistry":
        from edge_omd.head.registry import HeadRegistry
        return HeadRegistry
    raise AttributeError(f"module 'edge_omd.head' has no attribute {name!r}")
