"""`dexndm-train`: the training pipeline's command line."""
from __future__ import annotations

import argparse
import sys

from dexndm_training import bags


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dexndm-train", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    bags.register(subparsers)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
