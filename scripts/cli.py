"""ctxbench's one CLI: `python -m scripts.cli <command>`; the Makefile targets are thin calls to it.

The `ctxbench` command of the clone's virtualenv comes here too (ctxbench/cli.py); installed without the clone, it
runs `probe` alone.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
from pathlib import Path
from types import ModuleType

from ctxbench.cli import OneLineParser
from ctxbench.cli import interrupt as _interrupt

# command -> the stage (a package under scripts/) that holds it. The naming rule: command X is the module
# scripts/<stage>/X.py, exposing `add_arguments(parser)`, `run(args) -> int` and optionally
# `check_arguments(args) -> str | None`: a usage error no single option can see (exit 2 before anything runs).
COMMANDS = {
    "verify": "bench",
    "bench": "bench",
    "load": "load",
    "sweep": "load",
    "loadstats": "load",
    "server_instructions": "load",
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


def _chosen(argv: list[str]) -> str | None:
    """The command named on the line (the first word that is not an option), if it is one."""
    first = next((word for word in argv if not word.startswith("-")), None)
    return first if first in COMMANDS else None


def build_parser(
    only: str | None = None, every: bool = False
) -> tuple[OneLineParser, dict[str, argparse.ArgumentParser], dict[str, ModuleType]]:
    """The CLI's parser, each command's own parser and module: the options of `only` (or of `every` command, as the
    tests walk them); the other commands are listed by name and summary without importing their modules."""
    parser = OneLineParser(prog="ctxbench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    commands, modules = {}, {}
    for name in COMMANDS:
        commands[name] = sub.add_parser(name, help=summary(name))
        if every or name == only:
            modules[name] = importlib.import_module(module_name(name))
            modules[name].add_arguments(commands[name])
    return parser, commands, modules


def main(argv: list[str] | None = None) -> int:
    # SIGTERM (a supervisor, a CI timeout, `kill PID`) takes Ctrl-C's path: every command stops what it started by PID
    # in its `finally` blocks; servers run in their own sessions and would otherwise outlive a terminated orchestrator.
    signal.signal(signal.SIGTERM, _interrupt)
    argv = sys.argv[1:] if argv is None else argv
    parser, commands, modules = build_parser(only=_chosen(argv))
    args = parser.parse_args(argv)
    module = modules[args.command]  # parse_args exits on an unknown or missing command
    check = getattr(module, "check_arguments", None)
    problem = check(args) if check else None
    if problem:
        commands[args.command].error(problem)
    try:
        return module.run(args)
    except KeyboardInterrupt as interrupt:  # Ctrl-C or SIGTERM: the finally blocks on the way here stopped by PID
        why = str(interrupt) or "Ctrl-C"  # what it started; a traceback would only say where it was waiting
        print(f"ctxbench {args.command}: interrupted ({why}); what it started has been stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
