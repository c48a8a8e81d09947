"""The applications on top of the SDK: the `edge-omd` CLI, the demo and its simulated user.

The top of the import graph: these modules may import the exporter (`edge_omd_export`) and the
benchmarks (`edge_omd_bench`); no runtime module imports them (tests/runtime/test_imports.py).
"""
