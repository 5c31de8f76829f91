"""The ``cmhash`` command line (git style: ``cmhash <command> ...``).

Each command lives in its own module under ``cmhash.commands`` and exposes
``add_parser(subparsers)``, which registers the sub-command and sets ``func``.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import cmhash.commands
from cmhash import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cmhash", description="Supervised deep cross-modal hashing.")
    parser.add_argument("--version", action="version", version=f"cmhash {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="<command>")
    for info in sorted(pkgutil.iter_modules(cmhash.commands.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):  # shared helpers, not commands
            continue
        importlib.import_module(f"cmhash.commands.{info.name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, KeyError) as exc:  # cmhash.errors' DataError / ConfigError are ValueErrors
        print(f"cmhash {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
