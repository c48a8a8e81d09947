"""The benchmarks are imported by their install name `edge_omd_bench` (folder bench/); without
the documented install these tests fail here, loudly, instead of failing to collect one by one."""
import importlib.util

if importlib.util.find_spec("edge_omd_bench") is None:
    raise ImportError("edge_omd_bench (the repo's bench/ folder) is not installed: run "
                      "`pip install --no-deps -e .` in the checkout (scripts/env.sh does it)")
