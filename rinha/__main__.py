"""Command-line entry point: `rinha serve | processor | up | bench`, `rinha --version`."""

from __future__ import annotations

import argparse
import importlib
import sys

from rinha import __version__

# subcommand -> module exposing add_parser(subparsers); the module's parser sets `handler`
SUBCOMMANDS = {
    "serve": "rinha.server",
    "processor": "rinha.tools.emulator",
    "up": "rinha.tools.stack",
    "bench": "rinha.tools.bench",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rinha", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name in SUBCOMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:  # a module still missing in this build
            sub.add_parser(name, help=f"(unavailable: {exc})")
            continue
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        print(
            f"rinha {args.command}: not available in this build (the service-only image has "
            "`rinha serve` alone; the tools come with `pip install 'rinha[tools]'`)",
            file=sys.stderr,
        )
        return 2
    return int(handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
