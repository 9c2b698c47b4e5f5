"""The leak checker: one pure function that classifies a response against what the request sent."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from apps.harness.contract import (
    ALL_STARTUP_KEPT,
    AUDIT,
    AUDIT_HEADERS,
    AUDIT_STARTUP_HEADER,
    CHECKPOINTS,
    ENTRY,
    FIELDS,
    NOT_REPORTED,
    REQUEST_ID_HEADER,
    STARTUP_KEY,
)

OK = "ok"
LOST = "lost"  # a value was expected and none was seen
LEAK = "leak"  # a value that is not this request's (or anything at all at `entry`)
# A value the app set before its first request (apps/harness/startup.py) that this checkpoint cannot see, where the
# server's default configuration shows it: not another request's data, not a lost request value, but a changed app
# (its decimal precision, its log fields). Judged at every checkpoint and the audit, as field STARTUP.
DROPPED = "dropped"
VERDICTS = (OK, LOST, LEAK, DROPPED)
STARTUP = "startup"
# Echoed X-Request-ID and the body's request_id, checked like a checkpoint so a crossed response is caught too.
RESPONSE = "response"
VERDICT_POINTS = (*CHECKPOINTS, AUDIT, RESPONSE)

Verdicts = dict[str, dict[str, str]]


def failure_name(point: str, field: str | None, verdict: str) -> str:
    """The one spelling of a failure: `checkpoint.field:verdict`, or `kind:detail` for what is not a checkpoint's."""
    return f"{point}.{field}:{verdict}" if field is not None else f"{point}:{verdict}"


@dataclass(frozen=True, slots=True)
class Failure:
    """A failure name taken apart: where (`point`, `field`) and what (`verdict`: leak, lost, or another kind's detail).

    Load runs report the checker's failures (`entry.user_id:leak`) next to the client's own (`status:500`,
    `transport:ConnectionResetError`); every module that reads failure names reads them through this type.
    """

    point: str
    field: str | None
    verdict: str

    @classmethod
    def parse(cls, name: str) -> Failure:
        where, _, verdict = name.rpartition(":")
        point, dot, field = where.partition(".")
        return cls(point, field if dot else None, verdict)

    @property
    def name(self) -> str:
        return failure_name(self.point, self.field, self.verdict)

    @property
    def where(self) -> str:
        """`checkpoint.field` (or the kind alone)."""
        return self.name.rpartition(":")[0]

    @property
    def is_leak(self) -> bool:
        return self.verdict == LEAK

    @property
    def is_lost(self) -> bool:
        return self.verdict == LOST

    @property
    def is_dropped(self) -> bool:
        return self.verdict == DROPPED

    @property
    def judged(self) -> bool:
        """A verdict of the checker (leak, lost or dropped), not a failure to get a judgeable answer."""
        return self.verdict in (LEAK, LOST, DROPPED)


def leaks(names: Iterable[str]) -> list[str]:
    """The names among `names` that are leaks."""
    return [name for name in names if Failure.parse(name).is_leak]


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


# Every verdict ok: what the fast path returns, copied per response (callers add points to it).
ALL_OK: dict[str, dict[str, str]] = {
    **{checkpoint: dict.fromkeys((*FIELDS, STARTUP), OK) for checkpoint in CHECKPOINTS},
    AUDIT: dict.fromkeys((*FIELDS, STARTUP), OK),
    RESPONSE: {"request_id": OK},
}
NOTHING = dict.fromkeys(FIELDS)  # what `entry` must see: no field set before the request set its own
AUDIT_KEYS = tuple(AUDIT_HEADERS[field].lower() for field in FIELDS)
AUDIT_STARTUP_KEY = AUDIT_STARTUP_HEADER.lower()
REQUEST_ID_KEY = REQUEST_ID_HEADER.lower()


def classify(sent: Sent, headers: Mapping[str, str], body: Mapping) -> Verdicts:
    """Verdict per checkpoint and field for one 200 item response (`ok`, `lost` or `leak`).

    Why two paths: judging every field cost the load client 17.5% more CPU per request, and nearly every response
    is all ok. The fast path builds the exact `observed` structure an all-ok response carries and compares it whole
    (one dict comparison in C); only when anything differs (a leak, a lost value, a missing checkpoint, an extra
    field) does `classify_fields` judge field by field. Both give the same verdicts (tests/test_checker_fast.py):
    the fast path answers only when every field compared equal, where the field-by-field judge says ok too.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    expected_id = sent.request_id if sent.request_id is not None else lowered.get(REQUEST_ID_KEY)
    if (
        expected_id is not None
        and lowered.get(REQUEST_ID_KEY) == expected_id
        and body.get("request_id") == expected_id
        and (lowered.get(AUDIT_KEYS[0]) or None) == expected_id
        and (lowered.get(AUDIT_KEYS[1]) or None) == sent.user_id
        and (lowered.get(AUDIT_KEYS[2]) or None) == sent.tenant_id
        and lowered.get(AUDIT_STARTUP_KEY) == "0"
        and body.get(STARTUP_KEY) == ALL_STARTUP_KEPT
    ):
        triple = {"request_id": expected_id, "user_id": sent.user_id, "tenant_id": sent.tenant_id}
        expected = dict.fromkeys(CHECKPOINTS, triple)
        expected[ENTRY] = NOTHING
        if body.get("observed") == expected:
            return {point: dict(fields) for point, fields in ALL_OK.items()}
    return classify_fields(sent, headers, body)


# The byte-level fast path for load clients (all_ok_body): parsing the JSON alone cost more than the 5% of client CPU
# judging may add, so an all-ok body is recognised by its bytes. It must match, whole, a language whose every member
# parses to a dict with exactly these keys: a "variant" and an "item_id" token, a "request_id" token, the all-ok
# "observed" structure (checkpoints in contract order, as the apps' JSONResponse writes them: compact, unescaped
# tokens; every checkpoint after `entry` the same triple, held equal by backreferences), optionally "body_bytes"
# (POST). Nothing else fits: no span, no event, no extra field or key. One C regex match decides the shape; three
# comparisons then tie the captured ids to what this request sent (a token needs no JSON escape, so its bytes are its
# value). It replaced building the expected bytes per response: judging cost the load client 49k instructions per
# response (5.5% of its own), counted by loadtests/client_cost.py.
TOKEN_BYTES = rb"[A-Za-z0-9._-]{1,64}"
_NULLABLE = rb'(?:null|"' + TOKEN_BYTES + rb'")'
ALL_OK_BODY = re.compile(
    rb'\{"variant":"[A-Za-z0-9._-]*","item_id":"[A-Za-z0-9._-]*","request_id":"(?P<r>' + TOKEN_BYTES + rb')",'
    rb'"observed":\{"'
    + ENTRY.encode()
    + rb'":\{"request_id":null,"user_id":null,"tenant_id":null\}'
    + b"".join(
        b',"'
        + checkpoint.encode()
        + b'":'
        + (
            rb'\{"request_id":"(?P=r)","user_id":(?P<u>' + _NULLABLE + rb'),"tenant_id":(?P<t>' + _NULLABLE + rb")\}"
            if index == 0
            else rb'\{"request_id":"(?P=r)","user_id":(?P=u),"tenant_id":(?P=t)\}'
        )
        for index, checkpoint in enumerate(c for c in CHECKPOINTS if c != ENTRY)
    )
    + rb'\},"'
    + STARTUP_KEY.encode()
    + rb'":"'
    + ALL_STARTUP_KEPT.encode()
    + rb'"(?:,"body_bytes":[0-9]{1,12})?\}'
)
assert tuple(FIELDS) == ("request_id", "user_id", "tenant_id"), "ALL_OK_BODY spells the fields in this order"


def _json_token(value: str | None) -> bytes:
    return b"null" if value is None else b'"' + value.encode() + b'"'


def all_ok_body(sent: Sent, headers: Mapping[str, str], body: bytes, case_insensitive: bool = False) -> bool:
    """True only when `failures(observability.judge(...))` of this 200 response (body parsed) would be empty.

    False means "judge it field by field", never "it failed". Headers are read exactly as `classify` reads them
    (names lower-cased, the last of repeated names kept), unless `case_insensitive`: the caller vouches that
    `headers.get(lower-case name)` answers every spelling of the name and answers a repeated header with something
    that is not a str (geventhttpclient's Headers: a list), which then never compares equal here.
    """
    if sent.request_id is None:
        return False  # an anonymous id comes from the echo: rare, judged in full
    get = headers.get if case_insensitive else {name.lower(): value for name, value in headers.items()}.get
    if (
        get(REQUEST_ID_KEY) != sent.request_id
        or (get(AUDIT_KEYS[0]) or None) != sent.request_id
        or (get(AUDIT_KEYS[1]) or None) != sent.user_id
        or (get(AUDIT_KEYS[2]) or None) != sent.tenant_id
        or get(AUDIT_STARTUP_KEY) != "0"
    ):
        return False
    match = ALL_OK_BODY.fullmatch(body)
    return (
        match is not None
        and match["r"] == sent.request_id.encode()
        and match["u"] == _json_token(sent.user_id)
        and match["t"] == _json_token(sent.tenant_id)
    )


def classify_fields(sent: Sent, headers: Mapping[str, str], body: Mapping) -> Verdicts:
    """The reference judge: every checkpoint and field one by one (classify's path whenever anything differs)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    echoed = lowered.get(REQUEST_ID_HEADER.lower())
    expected = expected_values(sent, headers)
    observed = body.get("observed") or {}
    digits = body.get(STARTUP_KEY)
    digits = digits if isinstance(digits, str) and len(digits) == len(CHECKPOINTS) else NOT_REPORTED * len(CHECKPOINTS)
    verdicts: Verdicts = {}
    for checkpoint, digit in zip(CHECKPOINTS, digits, strict=True):
        seen = observed.get(checkpoint) or {}
        if checkpoint == ENTRY:
            verdicts[checkpoint] = {f: OK if seen.get(f) is None else LEAK for f in FIELDS}
        else:
            verdicts[checkpoint] = {f: judge_value(expected[f], seen.get(f)) for f in FIELDS}
        verdicts[checkpoint][STARTUP] = judge_startup(digit)
    verdicts[AUDIT] = {f: judge_value(expected[f], lowered.get(AUDIT_HEADERS[f].lower()) or None) for f in FIELDS}
    verdicts[AUDIT][STARTUP] = judge_startup(lowered.get(AUDIT_STARTUP_KEY) or NOT_REPORTED)
    crossed = echoed != expected["request_id"] or body.get("request_id") != expected["request_id"]
    verdicts[RESPONSE] = {"request_id": LEAK if crossed or expected["request_id"] is None else OK}
    return verdicts


def judge_startup(digit: str) -> str:
    """`ok` when the reading saw every startup value (or made no startup reading), `dropped` otherwise."""
    return OK if digit in ("0", NOT_REPORTED) else DROPPED


def failures(verdicts: Verdicts) -> list[str]:
    """Every non-ok verdict as `checkpoint.field:verdict`, the name load tests report failures under."""
    return [
        failure_name(point, field, verdict)
        for point, fields in verdicts.items()
        if fields != ALL_OK.get(point)  # one C comparison skips an all-ok point (nearly all of them)
        for field, verdict in fields.items()
        if verdict != OK
    ]


def tally(all_verdicts: Iterable[Verdicts]) -> Counter[str]:
    """How often each failure (`checkpoint.field:verdict`) occurred over many responses."""
    counts: Counter[str] = Counter()
    for verdicts in all_verdicts:
        counts.update(failures(verdicts))
    return counts
