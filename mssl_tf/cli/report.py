"""`mssl-report`: probe results of one or more runs as the thesis' tables and figures."""

from __future__ import annotations

import argparse
import logging
import sys


def build_parser() -> argparse.ArgumentParser:
    """Command-line flags of mssl-report."""
    p = argparse.ArgumentParser(
        prog="mssl-report",
        description="Collect the results.json of mssl-probe runs into Markdown tables in the "
                    "thesis' layout (Tables 4.1, A.1, A.2, B.1, B.2) and PNG figures (4.1, "
                    "4.2, B.1), with the thesis' published numbers beside ours.")
    p.add_argument("runs", nargs="+", help="run directories (or folders/results.json files)")
    p.add_argument("--out", required=True, help="output folder for report.md and the PNGs")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from mssl_tf.eval import report  # noqa: PLC0415

    try:
        out = report.write_report(args.runs, args.out)
    except FileNotFoundError as e:
        print(f"mssl-report: error: {e}", file=sys.stderr)
        return 2
    if not out["records"]:
        print(f"mssl-report: error: no results.json under {', '.join(args.runs)}; run "
              "mssl-probe on those runs first.", file=sys.stderr)
        return 2
    print(f"{out['records']} probe result(s) -> {out['markdown']}")
    for path in out["figures"].values():
        print(f"  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
