"""`edge-omd` command line: `demo`, `export`, `bench`.

Each subcommand lives in its own module and is imported only when called, so the runtime never
imports torch/transformers (only `export` does).
"""
import sys


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    usage = "usage: edge-omd {demo,export,bench} [options]   (edge-omd CMD --help for more)"
    if not argv or argv[0] in ("-h", "--help"):
        print(usage)
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "demo":
        from edge_omd.demo import main as run
    elif cmd == "export":
        from edge_omd_export.cli import main as run
    elif cmd == "bench":
        from edge_omd_bench.cli import main as run
    else:
        print(f"edge-omd: unknown command {cmd!r}\n{usage}", file=sys.stderr)
        return 2
    return int(run(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
