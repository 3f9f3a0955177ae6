"""The `harduino` command: one entry point, one subcommand per job.

Each group of subcommands lives beside the code it drives and registers itself
through `add_commands(subparsers)`; this module only wires them together and
turns a UserError into one clear sentence and a non-zero exit.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
import warnings

from . import __version__
from .errors import UserError

# Modules that contribute subcommands, in the order `--help` lists them.
COMMAND_MODULES = (
    "harduino.commands.link",      # ports, stream, replay, simulate
    "harduino.commands.data",      # record, import
    "harduino.commands.models",    # archs, train, evaluate, compare
    "harduino.commands.live",      # live
    "harduino.commands.look",      # plot, predict
    "harduino.commands.export",    # export
)


class Parser(argparse.ArgumentParser):
    """argparse, its errors in one line like harduino's own: the usage is one --help away."""

    def error(self, message: str):
        # A `type=` check of commands.numbers says "must be ...": after the option's name it reads as a sentence.
        message = re.sub(r"^argument (\S+): (?=must )", r"\1 ", message)
        self.exit(2, f"harduino: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="harduino",
        description="Real-time human activity recognition from an Arduino IMU.",
    )
    parser.add_argument("--version", action="version", version=f"harduino {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(subparsers)
    return parser


def _format_warning(message, category, filename, lineno, line=None, _python=warnings.formatwarning) -> str:
    """harduino's own warnings (an old bundle, a note on a recording) in one line, like its errors."""
    if category.__module__.startswith("harduino."):
        return f"harduino: warning: {message}\n"
    return _python(message, category, filename, lineno, line)


def main(argv: list[str] | None = None) -> int:
    warnings.formatwarning = _format_warning
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as done:  # --help, --version, or argparse refused an option: its status, returned
            return int(done.code or 0)
        code = int(args.run(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's last words
        return code
    except UserError as err:
        print(f"harduino: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # at any moment, start-up included: no traceback
        return 130
    except BrokenPipeError:  # the output went to `head` or similar, which has had enough: stop quietly
        _silence_stdout()
        return 141  # what a shell reports for a program ended by SIGPIPE


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush does not fail on the closed pipe too."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout is not a file (tests capture it)
        pass


if __name__ == "__main__":
    sys.exit(main())
