"""`probe(...)`: the probe for the user's own tests, with the CLI's options as typed keywords and typed results.

The CLI (`ctxbench probe`, ctxbench.probing.command) is a thin layer over this function: it parses the command line,
calls `probe`, prints the result's report and returns its exit code. Bad usage, and a target that cannot be served,
raise `ProbeUsageError` (the CLI's one line and exit code 2); Ctrl-C raises KeyboardInterrupt once every server it
started is stopped.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ctxbench import arguments
from ctxbench.files import write_json
from ctxbench.probing import analysis, sentinel, startup
from ctxbench.probing.driver import ProbeUsageError
from ctxbench.probing.session import DEFAULT_REQUESTS, MAX_REQUESTS, MIN_REQUESTS, probe_document
from ctxbench.serving import fronts, servers
from ctxbench.serving.process import LeftBehind

CLEAN, STALE, INCONCLUSIVE = "clean", "stale", "inconclusive"
VERDICTS = {analysis.EXIT_CLEAN: CLEAN, analysis.EXIT_STALE: STALE, analysis.EXIT_INCONCLUSIVE: INCONCLUSIVE}
# a row's verdict in the document -> the word the API uses for it
ROW_VERDICTS = {analysis.CLEAN: CLEAN, analysis.STALE: STALE, analysis.INCONCLUSIVE: INCONCLUSIVE}


@dataclass(frozen=True, slots=True)
class StaleValue:
    """One ContextVar that requests of one row found holding another request's value (or a shared object)."""

    server: str  # the server's label, with its front: `uvicorn-default via nginx`
    traffic: str  # `pipelined GET /`
    name: str  # the ContextVar's name
    module: str | None  # the module that created it, when found
    type: str  # the value's type
    requests: int  # requests that started with it
    kept: int  # ... and still held it at their response: the whole request ran with another request's value
    replaced: int  # ... and whose app set its own before responding
    data_leaks: int  # requests where it held another request's identity value (an --identity-header's)
    other_client_leaks: int  # ... one another client sent
    data_paths: tuple[str, ...]  # where in the value another request's identity value was found
    values: tuple[str, ...]  # previews of the values (only with show_values=True: they may be secrets)


@dataclass(frozen=True, slots=True)
class StartupValue:
    """A value the app set before its first request that a reset setting hides (measured on the server with it)."""

    name: str  # what to call it: `region`, `decimal context`, `structlog's service`
    var: str  # the ContextVar's own name: `region`, `decimal_context`, `structlog_service`
    module: str | None  # the module holding it, when found
    type: str  # the value's type
    change: str  # absent (the setting's server showed no such ContextVar) | different (another value)
    server: str  # the configuration probed: `uvloop-httptools`
    checked_on: str  # its twin with the setting, where this was measured: `uvloop-httptools-reset`
    setting: str  # the setting: `--reset-contextvars`


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the table: one server under one kind of traffic on one path."""

    server: str
    traffic: str
    sent: int
    answered: int
    statuses: dict[str, int]
    verdict: str  # clean | stale | inconclusive
    reason: str | None  # why it is inconclusive
    data_leaks: int
    stale: tuple[StaleValue, ...]


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """The verdict (what the exit code says), the rows, the stale values, and what the CLI prints."""

    verdict: str  # clean | stale | inconclusive: with fail_on="kept", replaced-only values leave it clean
    exit_code: int  # 0 clean, 1 stale, 3 inconclusive (2 is raised as ProbeUsageError)
    rows: tuple[Row, ...]
    stale: tuple[StaleValue, ...]  # every row's, in table order
    summary: str  # the one-line verdict: stale state found on ...; no stale state on ...
    fix: str | None  # the `fix:` line, when a server with a known fix showed stale state
    table: str
    document: dict[str, Any]  # the whole result, as `--json` writes it (with the environment)
    # startup values the reset setting would hide, measured on its server (empty: nothing hidden, or not checked)
    hidden_by_setting: tuple[StartupValue, ...] = ()
    setting_check: tuple[str, ...] = ()  # the report's lines on it: what was hidden, or why it was not checked

    def report(self) -> str:
        """What `ctxbench probe` prints on stdout: the table, the setting check, the verdict line, the fix line."""
        checked = [*self.setting_check, ""] if self.setting_check else []
        return "\n".join([self.table, "", *checked, self.summary, *([self.fix] if self.fix else [])])


def probe(
    app: str,
    *,
    python: str | os.PathLike[str] | None = None,
    app_dir: str | os.PathLike[str] | None = None,
    servers: str | Sequence[str] | None = None,
    front: str = fronts.DIRECT_FRONT.label,
    paths: str | Sequence[str] | None = None,
    post_path: str | None = None,
    stream_path: str | None = None,
    identity_headers: str | Sequence[str] = (),
    identity_format: str = sentinel.DEFAULT_IDENTITY_FORMAT,
    fail_on: str = "any",
    requests: int = DEFAULT_REQUESTS,
    setting_check: bool = True,
    show_values: bool = False,
    traceback: bool = False,
    json_path: str | os.PathLike[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> ProbeResult:
    """Serve `app` ("module:attribute") behind the sentinel under each server and report stale ContextVars.

    The keywords are `ctxbench probe`'s options: `python` (the app's interpreter, where the servers must be
    installed; default: this one), `app_dir` (where the module imports from; default: the current directory),
    `servers` (labels; default: the configurations most often deployed), `front`, `paths` (GET paths; default "/"),
    `post_path`, `stream_path`, `identity_headers`, `identity_format`, `fail_on` ("any" or "kept"), `requests` per
    row, `setting_check` (False: do not start the reset twin of a stale configuration to measure what its setting
    would hide of the app's startup values), `show_values`, `traceback`, `json_path` (write the whole result there),
    `progress` (called with each progress line). Raises ProbeUsageError for bad usage or a target that cannot be served.
    """
    checked = _checked(app, python, app_dir, servers, front, paths, post_path, stream_path, identity_headers)
    checked["identity_format"] = _check(
        arguments.one_of("identity format", sentinel.IDENTITY_PATTERNS), identity_format
    )
    checked["fail_on"] = _check(arguments.one_of("stale state to fail on", analysis.FAIL_ON), fail_on)
    if isinstance(requests, bool) or not isinstance(requests, int):
        raise ProbeUsageError(f"requests must be an integer, got {requests!r}")
    _check(arguments.int_range(MIN_REQUESTS, MAX_REQUESTS), str(requests), what="requests")
    output = _check(arguments.output_file, os.fspath(json_path), what="json_path") if json_path is not None else None
    try:
        document = probe_document(
            **checked,
            requests=requests,
            setting_check=bool(setting_check),
            show_values=show_values,
            traceback=traceback,
            progress=progress or (lambda line: None),
        )
    except LeftBehind as exc:  # a process that outlived its stop: nothing to judge, and one line to say so
        raise ProbeUsageError(str(exc)) from None
    if output is not None:
        write_json(output, document)
    return result_of(document)


def _check(parse: Callable[[str], Any], value: object, what: str = "") -> Any:
    """The CLI's own check of one option, its ArgumentTypeError turned into the API's one exception."""
    if not isinstance(value, str):
        raise ProbeUsageError(f"{what or 'a value'} must be a string, got {value!r}")
    try:
        return parse(value)
    except argparse.ArgumentTypeError as exc:
        raise ProbeUsageError(f"{what}: {exc}" if what else str(exc)) from None


def _many(value: str | Sequence[str] | None) -> list[str]:
    """One value or several: a lone string is one item, never its characters."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _checked(
    app: str,
    python: str | os.PathLike[str] | None,
    app_dir: str | os.PathLike[str] | None,
    labels: str | Sequence[str] | None,
    front: str,
    paths: str | Sequence[str] | None,
    post_path: str | None,
    stream_path: str | None,
    identity_headers: str | Sequence[str],
) -> dict[str, Any]:
    _check(app_reference, app)
    interpreter = sys.executable if python is None else _check(arguments.executable, os.fspath(python), "python")
    directory = Path(os.path.abspath(app_dir if app_dir is not None else os.getcwd()))
    if not directory.is_dir():
        raise ProbeUsageError(f"no such app directory: {directory}")
    chosen = [_check(arguments.one_of("server label", servers.BY_LABEL), label) for label in _many(labels)]
    configs = [servers.get(label) for label in dict.fromkeys(chosen)] or list(servers.PROBE_DEFAULT)
    # an unknown path still runs the app's middleware
    driven = [_check(arguments.url_path, path) for path in _many(paths)] or ["/"]
    return {
        "app": app,
        "configs": configs,
        "python": interpreter,
        "app_dir": directory,
        "paths": driven,
        "post_path": None if post_path is None else _check(arguments.url_path, post_path),
        "stream_path": None if stream_path is None else _check(arguments.url_path, stream_path),
        "identity": tuple(_check(arguments.header_name, name) for name in _many(identity_headers)),
        "front": fronts.get(_check(arguments.one_of("front", fronts.BY_LABEL), front)),
    }


def app_reference(text: str) -> str:
    """MODULE:APP, as uvicorn takes it."""
    module, _, attribute = text.partition(":")
    if not module or not attribute or any(character.isspace() for character in text):
        raise argparse.ArgumentTypeError(f"the app must be MODULE:APP, got {text!r}")
    return text


arguments.typed(app_reference, "app")


def _stale_value(server: dict, row: dict, item: dict) -> StaleValue:
    return StaleValue(
        server=analysis.where(server),
        traffic=f"{row['kind']} {row['method']} {row['path']}",
        name=item["name"],
        module=item["module"],
        type=item["type"],
        requests=item["count"],
        kept=item.get("kept", 0),
        replaced=item.get("replaced", 0),
        data_leaks=item.get("data_leaks", 0),
        other_client_leaks=item.get("other_client_leaks", 0),
        data_paths=tuple(item.get("data_paths", ())),
        values=tuple(item.get("values", ())),
    )


def _startup_values(checks: list[dict]) -> tuple[StartupValue, ...]:
    return tuple(
        StartupValue(
            name=item["name"],
            var=item["var"],
            module=item["module"],
            type=item["type"],
            change=item["change"],
            server=entry["server"],
            checked_on=entry["twin"],
            setting=entry["setting"],
        )
        for entry in checks
        for item in entry["hidden"]
    )


def result_of(document: dict[str, Any]) -> ProbeResult:
    """The typed result of a probe document (as `probe_document` returns it, or as read back from `--json`)."""
    rows = []
    for server in document["servers"]:
        for row in server["rows"]:
            rows.append(
                Row(
                    server=analysis.where(server),
                    traffic=f"{row['kind']} {row['method']} {row['path']}",
                    sent=row["sent"],
                    answered=row["answered"],
                    statuses=dict(row.get("statuses") or {}),
                    verdict=ROW_VERDICTS[row["verdict"]],
                    reason=row["inconclusive"],
                    data_leaks=row["data_leaks"],
                    stale=tuple(_stale_value(server, row, item) for item in row["stale"]),
                )
            )
    return ProbeResult(
        verdict=VERDICTS[document["exit_code"]],
        exit_code=document["exit_code"],
        rows=tuple(rows),
        stale=tuple(value for row in rows for value in row.stale),
        summary=analysis.verdict(document["servers"]),
        fix=document["fix_hint"],
        table=analysis.table(document["servers"]),
        document=document,
        hidden_by_setting=_startup_values(document.get("setting_checks", [])),
        setting_check=tuple(startup.section(document.get("setting_checks", []))),
    )
