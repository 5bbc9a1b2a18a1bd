"""`python -m rinha.tools.emulator [options]`: `rinha processor [options]`, standalone."""

from __future__ import annotations

import argparse
import sys

from rinha.tools.emulator import add_parser


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rinha.tools.emulator")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["processor", *(sys.argv[1:] if argv is None else argv)])
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
