"""Unit tests of the leak checker: each verdict is reachable, and a crossed response is caught."""

from apps.harness.checker import (
    DROPPED,
    LEAK,
    LOST,
    OK,
    RESPONSE,
    STARTUP,
    Sent,
    all_ok_body,
    classify,
    failures,
    tally,
)
from apps.harness.contract import (
    ALL_STARTUP_KEPT,
    AUDIT_HEADERS,
    AUDIT_STARTUP_HEADER,
    CHECKPOINTS,
    NOT_REPORTED,
    REQUEST_ID_HEADER,
    STARTUP_KEY,
    triple,
)

SENT = Sent("r1", "u1", "t1")


def body(**overrides: dict) -> dict:
    observed = {checkpoint: triple("r1", "u1", "t1") for checkpoint in CHECKPOINTS}
    observed["entry"] = triple()
    observed.update(overrides)
    return {"variant": "x", "item_id": "i", "request_id": "r1", "observed": observed, STARTUP_KEY: ALL_STARTUP_KEPT}


def headers(request_id: str = "r1", user_id: str = "u1", tenant_id: str = "t1", startup: str = "0") -> dict[str, str]:
    audit = dict(zip(AUDIT_HEADERS.values(), (request_id, user_id, tenant_id), strict=True))
    return {REQUEST_ID_HEADER: request_id, **audit, AUDIT_STARTUP_HEADER: startup}


def test_a_correct_response_is_all_ok() -> None:
    assert failures(classify(SENT, headers(), body())) == []


def test_anything_at_entry_is_a_leak() -> None:
    verdicts = classify(SENT, headers(), body(entry=triple("r1", None, None)))
    assert verdicts["entry"]["request_id"] == LEAK  # even this request's own id: entry must hold nothing


def test_missing_value_is_lost_and_foreign_value_is_a_leak() -> None:
    verdicts = classify(SENT, headers(), body(service=triple("r1", None, "t9")))
    assert verdicts["service"] == {"request_id": OK, "user_id": LOST, "tenant_id": LEAK, STARTUP: OK}


def test_anonymous_request_seeing_a_user_is_a_leak() -> None:
    sent = Sent("r1", None, "t1")
    verdicts = classify(sent, headers(user_id=""), body(task=triple("r1", "u7", "t1")))
    assert verdicts["task"]["user_id"] == LEAK
    assert verdicts["audit"]["user_id"] == OK  # empty audit header means "sees nothing", which is right here


def test_audit_headers_are_classified() -> None:
    verdicts = classify(SENT, headers(user_id="", tenant_id="t2"), body())
    assert verdicts["audit"] == {"request_id": OK, "user_id": LOST, "tenant_id": LEAK, STARTUP: OK}


def test_generated_request_id_is_taken_from_the_echo() -> None:
    sent = Sent(None, "u1", "t1")
    response = body()
    response["request_id"] = "r1"
    assert failures(classify(sent, headers(), response)) == []


def test_a_crossed_response_is_caught() -> None:
    assert classify(SENT, headers(request_id="r2"), body())[RESPONSE]["request_id"] == LEAK
    crossed = body()
    crossed["request_id"] = "r2"
    assert classify(SENT, headers(), crossed)[RESPONSE]["request_id"] == LEAK


def test_tally_counts_failures_by_name() -> None:
    counts = tally([classify(SENT, headers(), body(log=triple())), classify(SENT, headers(), body())])
    assert counts == {"log.request_id:lost": 1, "log.user_id:lost": 1, "log.tenant_id:lost": 1}


def test_a_startup_value_out_of_sight_is_dropped_where_it_happened() -> None:
    response = body()
    response[STARTUP_KEY] = "0" * 4 + "3" + "0" * 3  # the 5th checkpoint missed two startup values
    names = failures(classify(SENT, headers(startup="4"), response))
    assert sorted(names) == [f"audit.{STARTUP}:{DROPPED}", f"{CHECKPOINTS[4]}.{STARTUP}:{DROPPED}"]


def test_a_reading_without_a_startup_report_is_not_judged() -> None:
    response = body()
    response[STARTUP_KEY] = NOT_REPORTED * len(CHECKPOINTS)
    assert failures(classify(SENT, headers(startup=NOT_REPORTED), response)) == []


def test_the_byte_fast_path_never_passes_a_dropped_startup_value() -> None:
    import json

    kept = json.dumps(body(), separators=(",", ":")).encode()
    assert all_ok_body(SENT, headers(), kept)
    assert not all_ok_body(SENT, headers(), kept.replace(ALL_STARTUP_KEPT.encode(), b"0000000" + b"1"))
    assert not all_ok_body(SENT, headers(startup="1"), kept)
