"""Command line: ``python -m coursekit doctor``."""

from __future__ import annotations

import argparse
import sys

from coursekit import doctor


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m coursekit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("doctor", help="check the environment, data and checkpoints, and say how to fix what is missing")
    args = parser.parse_args(argv)
    if args.command == "doctor":
        return doctor.run()
    return 2


if __name__ == "__main__":
    sys.exit(main())
