"""ctxbench's one CLI: `python -m scripts.cli <command>`; the Makefile targets are thin calls to it."""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
from types import ModuleType
from typing import NoReturn

# command -> module under scripts/ exposing `add_arguments(parser)` and `run(args) -> int`, and optionally
# `check_arguments(args) -> str | None`: a usage error no single option can see (exit 2 before anything runs)
COMMANDS = {
    "verify": "scripts.bench.gate",
    "readme": "scripts.report.readme",
    "bench": "scripts.bench.run",
    "load": "scripts.load.single",
    "sweep": "scripts.load.sweep",
    "loadstats": "scripts.load.stats",
    "matrix": "scripts.matrix.run",
    "report": "scripts.report.build",
    "probe": "scripts.probe.command",
    "versions": "scripts.versions.run",
    "soak": "scripts.soak.run",
}


class OneLineParser(argparse.ArgumentParser):
    """Bad usage exits 2 with one clear line (the error, and where to find the usage), never a traceback."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def build_parser() -> tuple[OneLineParser, dict[str, argparse.ArgumentParser], dict[str, ModuleType]]:
    """The CLI's parser, each command's own parser and module (tests walk them to try every option)."""
    parser = OneLineParser(prog="ctxbench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    commands, modules = {}, {}
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        modules[name] = module
        commands[name] = sub.add_parser(name, help=(module.__doc__ or "").strip().splitlines()[0])
        module.add_arguments(commands[name])
    return parser, commands, modules


def main(argv: list[str] | None = None) -> int:
    # SIGTERM (a supervisor, a CI timeout, `kill PID`) takes Ctrl-C's path: every command stops what it started by PID
    # in its `finally` blocks; servers run in their own sessions and would otherwise outlive a terminated orchestrator.
    signal.signal(signal.SIGTERM, _interrupt)
    parser, commands, modules = build_parser()
    args = parser.parse_args(argv)
    module = modules[args.command]
    check = getattr(module, "check_arguments", None)
    problem = check(args) if check else None
    if problem:
        commands[args.command].error(problem)
    return module.run(args)


if __name__ == "__main__":
    sys.exit(main())
