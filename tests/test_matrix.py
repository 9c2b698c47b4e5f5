"""The propagation matrix runs in-process, and its cells agree with what the variants report."""

import json
from pathlib import Path

import pytest

from apps.harness import registry
from scripts import cli
from scripts.matrix import matrix
from scripts.matrix import propagation_app as m
from scripts.report.limits import AFTER_CALL_NEXT


@pytest.fixture(scope="module")
def result() -> dict:
    return matrix.run_matrix()


def cell(result: dict, kind: str, set_point: str, column: str) -> str:
    return result["cells"][kind][set_point][column]["label"]


def expects(variant: str, failure: str) -> bool:
    return failure in registry.get(variant).expected_in(registry.CONCURRENT)


def test_every_cell_is_judged(result: dict) -> None:
    for kind in m.MECHANISMS:
        for set_point in m.SET_POINTS:
            for column in matrix.COLUMNS:
                assert cell(result, kind, set_point, column) in matrix.LABELS


def test_a_contextvar_set_in_a_dependency_is_lost_after_call_next_exactly_when_the_variant_loses_its_audit(
    result: dict,
) -> None:
    invisible = cell(result, m.CONTEXTVAR, m.ASYNC_DEP, AFTER_CALL_NEXT) == "none"
    assert invisible == expects("contextvar_dependency", "audit.user_id:lost")
    assert invisible  # and it is invisible: the seeds' first post reproduced


def test_a_contextvar_set_in_pure_asgi_reaches_every_place_contextvar_asgi_reports(result: dict) -> None:
    places = {
        "dependency": m.DEPENDENCY,
        "endpoint": m.ENDPOINT,
        "task": m.CREATE_TASK,
        "thread": m.THREADPOOL,
        "log": m.LOG_FILTER,
        "audit": matrix.column(m.ASGI_SEND_START, m.ASGI_OUTSIDE),
    }
    for checkpoint, column in places.items():
        own = cell(result, m.CONTEXTVAR, m.ASGI_MW, column) == "own"
        assert own == (not expects("contextvar_asgi", f"{checkpoint}.request_id:lost")), checkpoint


def test_a_contextvar_set_before_call_next_reaches_the_endpoint_as_contextvar_basehttp_reports(result: dict) -> None:
    assert cell(result, m.CONTEXTVAR, m.BASEHTTP_MW, m.ENDPOINT) == "own"
    assert not expects("contextvar_basehttp", "endpoint.user_id:lost")


def test_request_state_set_in_a_dependency_is_visible_after_call_next(result: dict) -> None:
    """The seeds' recommended fix for the dependency pitfall, and the mutable-holder fix, both hold."""
    assert cell(result, m.REQUEST_STATE, m.ASYNC_DEP, AFTER_CALL_NEXT) == "own"
    assert cell(result, m.MUTABLE, m.ASYNC_DEP, AFTER_CALL_NEXT) == "own"


def test_run_in_executor_does_not_carry_contextvars(result: dict) -> None:
    assert cell(result, m.CONTEXTVAR, m.ASGI_MW, m.EXECUTOR) == "none"
    assert cell(result, m.CONTEXTVAR, m.ASGI_MW, m.TO_THREAD) == "own"


def test_no_request_ever_sees_another_requests_value(result: dict) -> None:
    labels = {
        c["label"] for rows in result["cells"].values() for row in rows.values() for c in row.values() if "label" in c
    }
    assert "foreign" not in labels


def test_the_judge_can_say_foreign() -> None:
    assert matrix.judge([("t1/probe", "t2/probe"), ("t2/probe", "t2/probe")])[0] == "foreign"
    assert matrix.judge([("t1/probe", None), ("t2/probe", "t2/probe")])[0] == "mixed"


def test_cli_writes_json_markdown_and_heatmap(result: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(matrix, "run_matrix", lambda: result)  # measured once, by the fixture (~20 s)
    assert cli.main(["matrix", "--results-dir", str(tmp_path)]) == 0
    raw = json.loads((tmp_path / "matrix" / "matrix.json").read_text())
    assert raw["environment"]["packages"]["fastapi"]
    assert "| read at ↓ / set in → |" in (tmp_path / "matrix" / "MATRIX.md").read_text()
    assert (tmp_path / "charts" / "matrix.png").stat().st_size > 10_000
