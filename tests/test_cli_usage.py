"""Bad usage of every command, generated from its own parser: exit 2, one line on stderr, nothing run or written.

Every option that takes a value is found by walking `scripts.cli`'s parser; each must be checked (choices, or a type
from scripts.common.arguments, which says its kind). The values it must refuse come from that kind: unknown names,
negative, zero (unless 0 means none), huge, empty, non-numeric, paths that are not there. Each command's `run` is
replaced by a stand-in, so a value wrongly accepted fails the test instead of starting anything; values that must be
accepted are tried too, so a check that refuses everything fails as well.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from scripts import cli
from scripts.common import results
from scripts.common.environment import ROOT

PARSER, COMMANDS, MODULES = cli.build_parser(every=True)
# what each command needs besides the option tried (a required option, a positional, a pair so the soak reads nothing)
BASE = {"load": ["--variant=baseline"], "probe": ["plain_asgi:app"], "soak": ["--pair=baseline:uvloop-httptools"]}
ZERO_MEANS_NONE = {("load", "--warmup"), ("load", "--rate"), ("versions", "--warmup"), ("bench", "--seed")}
MULTIPLE_OF = {("soak", "--users"): 5}  # every scenario at once needs as many users in each
# Its own count, a fortieth of the profile's (25 in CI, 250 with `make fuzz`): it runs once per option. The rest
# (derandomized in CI, fresh draws in the long profile) comes from the profile loaded in conftest.py.
EXAMPLES = settings(max_examples=max(1, settings.default.max_examples // 40), deadline=None)
# A value of `--` is refused before the name is looked up (argparse reads `--` as "no more options": `--stack --` is
# "expected one argument", and `--stack=--` is caught by cli.OneLineParser as "'--' is not a value"). Either line
# names the option and is a fine answer, so for that value the rule is "refused, naming the option" (a positional
# name still reads `--` as a name and lists the known ones). Every other unknown name is answered with the known ones.
DASHES = "--"
DASHES_REFUSALS = ("'--' is not a value", "expected one argument")
A_FILE = "a-file"  # a regular file in the working directory: not a directory, not a program


class Ran(Exception):
    """The command's `run` was reached: the value was accepted."""


def value_options() -> Iterator[tuple[str, argparse.Action]]:
    for command, parser in COMMANDS.items():
        for action in parser._actions:
            if action.nargs != 0:  # flags and --help take no value
                yield command, action


OPTIONS = list(value_options())
IDS = [
    f"{command}-{action.option_strings[-1] if action.option_strings else action.dest}" for command, action in OPTIONS
]


def kind(action: argparse.Action) -> str:
    return "choices" if action.choices is not None else getattr(action.type, "kind", "unchecked")


def names(action: argparse.Action) -> tuple[str, ...]:
    return tuple(action.choices) if action.choices is not None else action.type.names  # type: ignore[union-attr]


def option_name(command: str, action: argparse.Action) -> str:
    return action.option_strings[-1] if action.option_strings else action.dest


def argv(command: str, action: argparse.Action, value: str) -> list[str]:
    base = list(BASE.get(command, []))
    if not action.option_strings:  # the positional: in place of the base's
        return [command, *[item for item in base if item.startswith("-")], "--", value]
    return [command, *base, f"{action.option_strings[-1]}={value}"]


@pytest.fixture(scope="module")
def quiet_machine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A scratch working directory; afterwards: nothing written there or under results/, no process left."""
    work = tmp_path_factory.mktemp("cli-usage")
    (work / A_FILE).write_text("not a directory\n")
    before = {path: path.stat().st_mtime_ns for path in results.RESULTS.rglob("*")}
    children = {proc.pid for proc in psutil.Process().children(recursive=True)}
    sigterm = signal.getsignal(signal.SIGTERM)
    yield work
    signal.signal(signal.SIGTERM, sigterm)  # cli.main installs its own
    assert sorted(path.name for path in work.iterdir()) == [A_FILE]
    assert {path: path.stat().st_mtime_ns for path in results.RESULTS.rglob("*")} == before
    assert {proc.pid for proc in psutil.Process().children(recursive=True)} <= children


@pytest.fixture
def stand_ins(quiet_machine: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(quiet_machine)
    monkeypatch.setattr(cli, "build_parser", lambda only=None, every=False: (PARSER, COMMANDS, MODULES))
    for module in MODULES.values():

        def ran(args: argparse.Namespace) -> int:
            raise Ran(vars(args))

        monkeypatch.setattr(module, "run", ran)
    return quiet_machine


def refused(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run the CLI in-process; it must exit 2 with exactly one line on stderr (returned), and nothing on stdout."""
    capsys.readouterr()
    try:
        code = cli.main(args)
    except Ran:
        pytest.fail(f"accepted: {args}")
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    assert code == 2, (args, out, err)
    assert out == "" and err.endswith("\n") and err.count("\n") == 1, (args, err)
    assert "Traceback" not in err and err.startswith(f"ctxbench {args[0]}: error: "), (args, err)
    return err


def accepted(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    with pytest.raises(Ran):
        try:
            cli.main(args)
        except SystemExit:
            pytest.fail(f"refused: {args}: {capsys.readouterr().err}")


def bad_values(command: str, action: argparse.Action) -> list[str]:
    found = kind(action)
    blank = ["", " ", "a\nb"]
    if found in ("choices", "name"):
        first = names(action)[0]
        return [*blank, "nope", f"{first}x", f" {first}", *([first.upper()] if first.upper() != first else [])]
    if found in ("int", "float"):
        low, high = action.type.low, action.type.high  # type: ignore[union-attr]
        values = [*blank, "abc", "nan", "inf", "-inf", "-5", "-1", str(high * 10), "1" + "0" * 30, "1e400"]
        values += ["1.5"] if found == "int" else [str(low / 2)] if low > 0 else []
        return values + ([] if (command, option_name(command, action)) in ZERO_MEANS_NONE else ["0", "0.0"])
    return {
        "existing_dir": [*blank, "/nonexistent-ctxbench/dir", "missing-here", A_FILE],
        "output_dir": [*blank, A_FILE, f"{A_FILE}/below"],
        "output_file": [*blank, "/", ".", "/nonexistent-ctxbench/x.json"],
        "executable": [*blank, "no-such-python-here", "/nonexistent/bin/python", f"./{A_FILE}"],
        "url_path": [*blank, "nope", "/a b", "/a\tb"],
        "header_name": [*blank, "a b", "x:y", "a/b"],
        "cpu_list": ["nope", "-1", "99999", "1-0", "0,", ",", "a\nb"],
        "app": [*blank, "nope", ":app", "module:", "a b:c"],
        "pair": [*blank, "nope", "baseline:nope", "nope:uvloop-httptools", "baseline", f"baseline:{A_FILE}"],
    }[found]


def good_value(command: str, action: argparse.Action, work: Path) -> str:
    found = kind(action)
    if found in ("choices", "name"):
        return names(action)[0]
    if found in ("int", "float"):
        return str(action.default if action.default is not None else action.type.low)  # type: ignore[union-attr]
    return {
        "existing_dir": str(work),
        "output_dir": str(work / "out"),
        "output_file": str(work / "out.json"),
        "executable": sys.executable,
        "url_path": "/items",
        "header_name": "X-Tenant",
        "cpu_list": str(min(os.sched_getaffinity(0))),
        "app": "plain_asgi:app",
        "pair": "contextvar_isolated:daphne",
    }[found]


def test_the_parser_has_options_to_try() -> None:
    assert len(COMMANDS) == len(cli.COMMANDS) and len(OPTIONS) >= 30


@pytest.mark.parametrize(("command", "action"), OPTIONS, ids=IDS)
def test_every_option_that_takes_a_value_is_checked(command: str, action: argparse.Action) -> None:
    assert kind(action) != "unchecked", (
        f"{command} {option_name(command, action)}: use a type of scripts.common.arguments"
    )
    if kind(action) in ("int", "float"):
        low = action.type.low  # type: ignore[union-attr]
        zero_allowed = (command, option_name(command, action)) in ZERO_MEANS_NONE
        assert (low == 0) if zero_allowed else (low > 0), "0 is refused unless it means none"
        assert math.isfinite(action.type.high)  # type: ignore[union-attr]


@pytest.mark.parametrize(("command", "action"), OPTIONS, ids=IDS)
def test_bad_values_exit_2_with_one_line(
    command: str, action: argparse.Action, stand_ins: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for value in bad_values(command, action):
        refused(argv(command, action, value), capsys)


@pytest.mark.parametrize(("command", "action"), OPTIONS, ids=IDS)
def test_a_good_value_is_accepted(
    command: str, action: argparse.Action, stand_ins: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    accepted(argv(command, action, good_value(command, action, stand_ins)), capsys)


NAMED = [(command, action) for command, action in OPTIONS if kind(action) in ("choices", "name")]
NUMERIC = [(command, action) for command, action in OPTIONS if kind(action) in ("int", "float")]


@pytest.mark.parametrize(("command", "action"), NAMED, ids=[f"{c}-{option_name(c, a)}" for c, a in NAMED])
def test_an_unknown_name_is_refused_with_the_known_ones(
    command: str, action: argparse.Action, stand_ins: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    known = names(action)

    @EXAMPLES
    @given(st.text(max_size=30).filter(lambda text: text not in known))
    @example(DASHES)  # drawn once at random by CI and failed it (issue 33): now every run has it
    @example("-")
    @example(f"-{known[0]}")
    def check(name: str) -> None:
        line = refused(argv(command, action, name), capsys)
        listed = all(item in line for item in known)
        assert listed or (name == DASHES and any(refusal in line for refusal in DASHES_REFUSALS)), line

    check()


@pytest.mark.parametrize(("command", "action"), NUMERIC, ids=[f"{c}-{option_name(c, a)}" for c, a in NUMERIC])
def test_a_number_out_of_range_is_refused_and_one_in_range_accepted(
    command: str, action: argparse.Action, stand_ins: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    low, high = action.type.low, action.type.high  # type: ignore[union-attr]
    step = MULTIPLE_OF.get((command, option_name(command, action)), 1)
    if kind(action) == "int":
        outside = st.one_of(st.integers(max_value=low - 1), st.integers(min_value=high + 1))
        inside = st.integers(min_value=math.ceil(low / step), max_value=high // step).map(lambda n: n * step)
    else:
        outside = st.one_of(st.floats(max_value=low, exclude_max=True), st.floats(min_value=high, exclude_min=True))
        inside = st.floats(min_value=low, max_value=high)

    @EXAMPLES
    @given(outside, inside)
    def check(bad: float, good: float) -> None:
        refused(argv(command, action, repr(bad)), capsys)
        accepted(argv(command, action, repr(good)), capsys)

    check()


def cli_process(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "scripts.cli", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("sweep", "--server", "nope", "--dry-run"), "uvloop-httptools"),
        (("sweep", "--variant", "nope", "--dry-run"), "contextvar_isolated"),
        (("sweep", "--mode", "quick", "--server", "uvloop-httptools-w2", "--dry-run"), "runs no --server"),
        (("load", "--variant", "baseline", "--duration", "-5"), "--duration"),
        (("load", "--variant", "baseline", "--users", "0"), "--users"),
        (("report", "--results-dir", "{missing}"), "no such directory"),
    ],
    ids=["sweep-server", "sweep-variant", "sweep-server-not-in-mode", "load-duration", "load-users", "report-missing"],
)
def test_the_reported_cases_exit_2_with_one_line(tmp_path: Path, args: tuple[str, ...], expected: str) -> None:
    missing = tmp_path / "some" / "missing" / "dir"
    done = cli_process(*(arg.replace("{missing}", str(missing)) for arg in args))
    assert done.returncode == 2 and done.stdout == "", done
    assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr and expected in done.stderr
    assert not (tmp_path / "some").exists()  # looking did not create it
