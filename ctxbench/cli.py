"""The `ctxbench` command: in the clone, the suite's whole CLI (scripts/cli.py); installed alone, the probe.

A wheel holds only this package, so the installed command has `probe` and says in one line (exit 2) that the suite's
other commands need the clone. In the clone (an editable install, or `python -m scripts.cli`), scripts/cli.py stays
the one index of commands and takes `probe` from here like any other.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import NoReturn

PROG = "ctxbench"
INSTALLED_COMMANDS = ("probe",)
INSTALLED_HELP = (
    "ctxbench probe MODULE:APP serves your ASGI app under real servers and reports ContextVars that one request"
    " leaves for another. The benchmark suite's other commands need a clone of the repository."
)


class OneLineParser(argparse.ArgumentParser):
    """Bad usage exits 2 with one clear line (the error, and where to find the usage), never a traceback."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[no-untyped-def]
        # argparse drops a value of `--` (`--scenario=--` becomes no value at all and the default runs): refuse it.
        leaf = self._subparsers is None  # the command's own parser says it, with its own name
        for word in (args if args is not None else sys.argv[1:]) if leaf else ():
            if word.startswith("-") and word.partition("=")[2] == "--":
                self.error(f"argument {word.partition('=')[0]}: '--' is not a value")
        return super().parse_known_args(args, namespace)


def interrupt(signum: int, frame: object) -> None:
    """SIGTERM (a supervisor, a CI timeout, `kill PID`) takes Ctrl-C's path: every `finally` stops what it started."""
    raise KeyboardInterrupt(f"signal {signum}")


def clone_root() -> Path | None:
    """The repository this package sits in, when it is the clone's (scripts/cli.py beside it), else None."""
    root = Path(__file__).resolve().parents[1]
    if (root / "scripts" / "cli.py").is_file() and (root / "pyproject.toml").is_file():
        return root
    return None


def installed_main(argv: list[str]) -> int:
    """The installed tool: `probe`, and one line for any other command."""
    from ctxbench.probing import command

    first = next((word for word in argv if not word.startswith("-")), None)
    if first is not None and first not in INSTALLED_COMMANDS:
        print(
            f"{PROG}: error: {first!r} is not a command of the installed ctxbench, which runs"
            f" {', '.join(INSTALLED_COMMANDS)}; the benchmark suite's commands need a clone of the repository"
            " (then `make setup`)",
            file=sys.stderr,
        )
        return 2
    parser = OneLineParser(prog=PROG, description=INSTALLED_HELP)
    sub = parser.add_subparsers(dest="command", required=True)
    probe_parser = sub.add_parser("probe", help=(command.__doc__ or "").splitlines()[0])
    command.add_arguments(probe_parser)
    args = parser.parse_args(argv)
    try:
        return command.run(args)
    except KeyboardInterrupt as stopped:  # SIGTERM: the finally blocks on the way here stopped what it started
        print(f"{PROG} probe: interrupted ({stopped or 'Ctrl-C'}); what it started has been stopped", file=sys.stderr)
        return 130


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, interrupt)
    argv = sys.argv[1:] if argv is None else argv
    root = clone_root()
    if root is None:
        return installed_main(argv)
    if str(root) not in sys.path:  # the console script's path holds its bin directory, not the clone
        sys.path.insert(0, str(root))
    from scripts import cli

    return cli.main(argv)
