"""ctxbench's one CLI: `python -m scripts.cli <command>`; the Makefile targets are thin calls to it."""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
from pathlib import Path
from typing import NoReturn

# command -> the stage (a package under scripts/) that holds it. The naming rule: command X is the module
# scripts/<stage>/X.py, exposing `add_arguments(parser)` and `run(args) -> int`.
COMMANDS = {
    "verify": "bench",
    "bench": "bench",
    "load": "load",
    "sweep": "load",
    "loadstats": "load",
    "matrix": "matrix",
    "report": "report",
    "readme": "report",
    "variant": "report",
    "probe": "probe",
    "versions": "versions",
    "soak": "soak",
}
SCRIPTS = Path(__file__).resolve().parent


def module_name(command: str) -> str:
    return f"scripts.{COMMANDS[command]}.{command}"


def summary(command: str) -> str:
    """The first line of the command module's docstring, read from its source: `--help` imports no command."""
    source = (SCRIPTS / COMMANDS[command] / f"{command}.py").read_text(encoding="utf-8")
    return source.split('"""', 2)[1].strip().splitlines()[0]


class OneLineParser(argparse.ArgumentParser):
    """Bad usage exits 2 with one clear line (the error, and where to find the usage), never a traceback."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _chosen(argv: list[str]) -> str | None:
    """The command named on the line (the first word that is not an option), if it is one."""
    first = next((word for word in argv if not word.startswith("-")), None)
    return first if first in COMMANDS else None


def main(argv: list[str] | None = None) -> int:
    # SIGTERM (a supervisor, a CI timeout, `kill PID`) takes Ctrl-C's path: every command stops what it started by PID
    # in its `finally` blocks; servers run in their own sessions and would otherwise outlive a terminated orchestrator.
    signal.signal(signal.SIGTERM, _interrupt)
    argv = sys.argv[1:] if argv is None else argv
    parser = OneLineParser(prog="ctxbench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    chosen = _chosen(argv)
    module = importlib.import_module(module_name(chosen)) if chosen else None
    for name in COMMANDS:
        command = sub.add_parser(name, help=summary(name))
        if name == chosen and module is not None:
            module.add_arguments(command)
    args = parser.parse_args(argv)
    assert module is not None  # parse_args exits on an unknown or missing command
    return module.run(args)


if __name__ == "__main__":
    sys.exit(main())
