"""The leak checker: one pure function that classifies a response against what the request sent."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from apps.contract import AUDIT, AUDIT_HEADERS, CHECKPOINTS, ENTRY, FIELDS, REQUEST_ID_HEADER

OK = "ok"
LOST = "lost"  # a value was expected and none was seen
LEAK = "leak"  # a value that is not this request's (or anything at all at `entry`)
VERDICTS = (OK, LOST, LEAK)
# Echoed X-Request-ID and the body's request_id, checked like a checkpoint so a crossed response is caught too.
RESPONSE = "response"
VERDICT_POINTS = (*CHECKPOINTS, AUDIT, RESPONSE)

Verdicts = dict[str, dict[str, str]]


@dataclass(frozen=True, slots=True)
class Sent:
    """The identity headers a client sent (None where it sent none)."""

    request_id: str | None
    user_id: str | None
    tenant_id: str | None


def judge_value(expected: str | None, seen: str | None) -> str:
    """One field: `ok` if it is this request's value, `lost` if nothing was seen, `leak` if something else was."""
    if seen == expected:
        return OK
    return LOST if seen is None else LEAK


def expected_values(sent: Sent, headers: Mapping[str, str]) -> dict[str, str | None]:
    """What every checkpoint should see: the sent identity, the request id taken from the echo when none was sent."""
    echoed = {name.lower(): value for name, value in headers.items()}.get(REQUEST_ID_HEADER.lower())
    return {
        "request_id": sent.request_id if sent.request_id is not None else echoed,
        "user_id": sent.user_id,
        "tenant_id": sent.tenant_id,
    }


def classify(sent: Sent, headers: Mapping[str, str], body: Mapping) -> Verdicts:
    """Verdict per checkpoint and field for one 200 item response (`ok`, `lost` or `leak`)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    echoed = lowered.get(REQUEST_ID_HEADER.lower())
    expected = expected_values(sent, headers)
    observed = body.get("observed") or {}
    verdicts: Verdicts = {}
    for checkpoint in CHECKPOINTS:
        seen = observed.get(checkpoint) or {}
        if checkpoint == ENTRY:
            verdicts[checkpoint] = {f: OK if seen.get(f) is None else LEAK for f in FIELDS}
        else:
            verdicts[checkpoint] = {f: judge_value(expected[f], seen.get(f)) for f in FIELDS}
    verdicts[AUDIT] = {f: judge_value(expected[f], lowered.get(AUDIT_HEADERS[f].lower()) or None) for f in FIELDS}
    crossed = echoed != expected["request_id"] or body.get("request_id") != expected["request_id"]
    verdicts[RESPONSE] = {"request_id": LEAK if crossed or expected["request_id"] is None else OK}
    return verdicts


def failures(verdicts: Verdicts) -> list[str]:
    """Every non-ok verdict as `checkpoint.field:verdict`, the name load tests report failures under."""
    return [
        f"{point}.{field}:{verdict}"
        for point, fields in verdicts.items()
        for field, verdict in fields.items()
        if verdict != OK
    ]


def tally(all_verdicts: Iterable[Verdicts]) -> Counter[str]:
    """How often each failure (`checkpoint.field:verdict`) occurred over many responses."""
    counts: Counter[str] = Counter()
    for verdicts in all_verdicts:
        counts.update(failures(verdicts))
    return counts
