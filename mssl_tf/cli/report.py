"""`mssl-report`: probe results and training curves of one or more runs as tables and figures."""

from __future__ import annotations

import argparse
import sys

from mssl_tf.cli import common

PROG = "mssl-report"


def build_parser() -> argparse.ArgumentParser:
    """Command-line flags of mssl-report."""
    p = common.make_parser(
        PROG, "Collect the results.json of mssl-probe runs into Markdown tables in the thesis' "
              "layout (Tables 4.1, A.1, A.2, B.1, B.2) and PNG figures (4.1, 4.2, B.1), with "
              "the thesis' published numbers beside ours, plus every run's pre-training curves "
              "(loss, objective terms, rep_std, rep_rank from history.csv) and probe scores "
              "over snapshot epochs.")
    p.add_argument("runs", nargs="+", metavar="RUN",
                   help="run directories (or folders holding them, or results.json files)")
    common.add_alias(p, "--out", "--out_dir", required=True,
                     help="output folder for report.md, records.json and the PNGs")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    common.setup(args)
    if message := common.wrong_output_kind("--out", args.out, folder=True):
        return common.error(PROG, message)
    from mssl_tf.eval import report  # noqa: PLC0415  (matplotlib; no TensorFlow)

    try:
        out = report.write_report(args.runs, args.out)
    except (FileNotFoundError, ValueError) as e:
        return common.error(PROG, e)
    print(f"{out['records']} probe result(s), {len(out['runs'])} training histories -> "
          f"{out['markdown']}")
    for path in out["figures"].values():
        print(f"  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
