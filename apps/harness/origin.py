"""Where a leaked value came from: another client connection's request, the same connection's, or cannot be told.

Every load client (one locust user: one keep-alive connection) sends identities that carry its client id,
`c<12 hex digits>-<r|u|t><seq>` (still a contract token), so a value seen by the wrong request names its sender. The
request's own client id is read from its own request id: the judge needs no state. Behind a reverse proxy, different
clients' requests share upstream connections, and "another client's data" is what a leak means to a user.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping

from apps.harness.checker import AUDIT, LEAK, RESPONSE, Sent, Verdicts
from apps.harness.contract import AUDIT_HEADERS, CHECKPOINTS, REQUEST_ID_HEADER
from apps.harness.observability import EVENT

OTHER_CLIENT, SAME_CLIENT, UNKNOWN = "other_client", "same_client", "unknown"
ORIGINS = (OTHER_CLIENT, SAME_CLIENT, UNKNOWN)
CLIENT_TOKEN = re.compile(r"(c[0-9a-f]{12})-[rut][0-9]{1,18}")


def new_client_id() -> str:
    """A fresh client id: the prefix of every identity one load client sends."""
    return f"c{uuid.uuid4().hex[:12]}"


def client_of(value: object) -> str | None:
    """The client id a value carries, or None when it is not an identity a load client sent."""
    match = CLIENT_TOKEN.fullmatch(value) if isinstance(value, str) else None
    return match.group(1) if match else None


def origin(value: object, own_client: str | None) -> str:
    """OTHER_CLIENT, SAME_CLIENT or UNKNOWN (no client id in the value, or none in the request's own identity)."""
    client = client_of(value)
    if client is None or own_client is None:
        return UNKNOWN
    return SAME_CLIENT if client == own_client else OTHER_CLIENT


def leaked_values(sent: Sent, headers: Mapping[str, str], body: Mapping, verdicts: Verdicts) -> list[object]:
    """The values the response showed where the checker said `leak` (checkpoints, audit, echo, event)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    observed = body.get("observed") or {}
    found: list[object] = []
    for point, fields in verdicts.items():
        for field, verdict in fields.items():
            if verdict != LEAK:
                continue
            if point in CHECKPOINTS:
                found.append((observed.get(point) or {}).get(field))
            elif point == AUDIT:
                found.append(lowered.get(AUDIT_HEADERS[field].lower()))
            elif point == RESPONSE:  # the echo or the body's id, whichever is not this request's
                found += [v for v in (lowered.get(REQUEST_ID_HEADER.lower()), body.get("request_id")) if v]
            elif point == EVENT:
                event = body.get(EVENT) or {}
                carried = {"user_id": (event.get("user") or {}).get("id"), **(event.get("tags") or {})}
                found.append(carried.get(field))
    return [value for value in found if value is not None and value != sent.request_id]


def origins(sent: Sent, headers: Mapping[str, str], body: Mapping, verdicts: Verdicts) -> frozenset[str]:
    """The origins of every leaked value of one response (empty when nothing leaked)."""
    own = client_of(sent.request_id)
    return frozenset(origin(value, own) for value in leaked_values(sent, headers, body, verdicts))
