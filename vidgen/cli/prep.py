"""``vidgen-prep``: turn a source of video into the vidgen HDF5 clip format.

Each subcommand is a module of ``data_prep`` exposing ``add_arguments(parser)`` and
``run(args)``; the registry ``data_prep.SOURCES`` maps subcommand names to them.
SIGTERM (a scheduler's or ``kill``'s stop) ends a run as Ctrl-C does: the writers remove
their partial files and the command says so in one line.
"""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType

from vidgen.cli.errors import exit_on_user_error


def build_parser() -> argparse.ArgumentParser:
    from data_prep import SOURCES

    parser = argparse.ArgumentParser(
        prog="vidgen-prep", description="Convert video sources into vidgen HDF5 clip files."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in SOURCES.items():
        sub = commands.add_parser(name, help=module.__doc__.strip().splitlines()[0])
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def _stop(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds through the writers, which remove their partial files


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        return args.run(args) or 0
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


if __name__ == "__main__":
    sys.exit(main())
