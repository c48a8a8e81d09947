"""tests/export: the exporter is imported by its install name `edge_omd_export` (folder export/);
without the documented install these tests fail here, loudly, instead of skipping. The tiny
checkpoints and heads they share (`tiny_ckpt`, `tiny_head`) are fixtures of tests/conftest.py."""
import importlib.util

if importlib.util.find_spec("edge_omd_export") is None:
    raise ImportError("edge_omd_export (the repo's export/ folder) is not installed: run "
                      "`pip install --no-deps -e .` in the checkout (scripts/env.sh does it)")
