"""Judge one HTTP response with the leak checker: the failure names a load test reports (empty when all is ok)."""

from __future__ import annotations

import json
from collections.abc import Mapping

from geventhttpclient.header import Headers as ClientHeaders

from apps.harness.checker import Failure, all_ok_body, failures, leaks
from apps.harness.observability import TraceLog
from apps.harness.observability import judge as judge_response
from apps.harness.origin import origins
from apps.harness.traffic import RequestSpec

NOT_JSON = "body:not-json"
# Trace ids this load-client process has seen: a span joining another request's trace is caught across responses.
TRACES = TraceLog()


def status_failure(status: int) -> str:
    return f"status:{status}"


NO_ORIGINS: frozenset[str] = frozenset()


def judge(
    spec: RequestSpec,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    validate: bool = True,
    traces: TraceLog | None = None,
) -> list[str]:
    """`checkpoint.field:verdict` for every leak or lost value, or why the response could not be judged."""
    return assess(spec, status, headers, body, validate, traces)[0]


def assess(
    spec: RequestSpec,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    validate: bool = True,
    traces: TraceLog | None = None,
) -> tuple[list[str], frozenset[str]]:
    """The failure names (as `judge`) and where the leaked values came from (apps.harness.origin: another client
    connection, the same one, unknown); the origins are looked up only for a response that leaked.

    `validate=False` checks the status only: the client's cost without the leak checker (`--ctx-skip-validation`).
    A variant that reports its server span or its error event has them judged too (`span.*`, `event.*`), against
    `traces` (default: this process's).
    """
    if status != 200:
        return [status_failure(status)], NO_ORIGINS
    if not validate:
        return [], NO_ORIGINS
    # The common case, recognised by its bytes: same verdict, no parsing. geventhttpclient's headers (locust's
    # FastHttpUser) are looked up by lower-case name as they are stored, instead of copied into a lowered dict.
    if all_ok_body(spec.sent, headers, body, isinstance(headers, ClientHeaders)):
        return [], NO_ORIGINS
    try:
        data = json.loads(body)
    except ValueError:
        return [NOT_JSON], NO_ORIGINS
    if not isinstance(data, dict):
        return [NOT_JSON], NO_ORIGINS
    traces = TRACES if traces is None else traces
    verdicts = judge_response(spec.sent, spec.traceparent, headers, data, traces)
    names = failures(verdicts)
    return names, origins(spec.sent, headers, data, verdicts) if leaks(names) else NO_ORIGINS


def failing(names: list[str]) -> list[str]:
    """The names that fail a request: all but a dropped startup value, which changes the app, not whose data it
    sees (it is tallied with the rest, and the report tells it apart: scripts/load/verdicts.py)."""
    return [name for name in names if not Failure.parse(name).is_dropped] if names else names


def message(names: list[str]) -> str:
    """The locust failure message: every failing checkpoint.field, sorted, so equal combinations group together."""
    return " ".join(sorted(names))
