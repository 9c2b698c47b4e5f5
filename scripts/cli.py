"""ctxbench's one CLI: `python -m scripts.cli <command>`; the Makefile targets are thin calls to it."""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
from typing import NoReturn

# command -> module under scripts/ exposing `add_arguments(parser)` and `run(args) -> int`
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


def main(argv: list[str] | None = None) -> int:
    # SIGTERM (a supervisor, a CI timeout, `kill PID`) takes Ctrl-C's path: every command stops what it started by PID
    # in its `finally` blocks; servers run in their own sessions and would otherwise outlive a terminated orchestrator.
    signal.signal(signal.SIGTERM, _interrupt)
    parser = OneLineParser(prog="ctxbench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    modules = {}
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        modules[name] = module
        command = sub.add_parser(name, help=(module.__doc__ or "").strip().splitlines()[0])
        module.add_arguments(command)
    args = parser.parse_args(argv)
    return modules[args.command].run(args)


if __name__ == "__main__":
    sys.exit(main())
