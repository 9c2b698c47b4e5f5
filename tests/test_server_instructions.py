"""Server-side instruction counts: the marker app, the per-request arithmetic and the dump bookkeeping, no callgrind."""

from __future__ import annotations

from pathlib import Path

import pytest

from apps.harness import inprocess, registry, traffic
from scripts.load import server_instructions as si


@pytest.fixture
def marker_app(monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.setenv(si.MARKER_ENV, registry.reference())
    import importlib

    import microbench.server_marker as module

    return importlib.reload(module)


def test_marker_app_passes_requests_through_and_answers_the_marker(marker_app: object) -> None:
    spec = traffic.request(traffic.GET, "marker", 1, anonymous=False)
    reply = inprocess.run(inprocess.concurrently(marker_app.app, [spec]))[0]
    assert reply.status == 200 and reply.json()["variant"] == registry.reference()
    scope = inprocess.http_scope("GET", si.MARKER_PATH, [])
    marked = inprocess.run(inprocess.call_scope(marker_app.app, scope, b""))
    assert marked.status == 204
    assert (marker_app.MARKER_PATH, marker_app.MARKER_FUNCTION) == (si.MARKER_PATH, si.MARKER_FUNCTION)


def test_marker_app_refuses_an_unknown_variant(marker_app: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(si.MARKER_ENV, "no_such_variant")
    with pytest.raises(marker_app.UnknownVariant):
        marker_app._variant_app()


def segment(method: str, requests: int, block: int, wall_s: float, instructions: float) -> dict:
    return {"method": method, "requests": requests, "block": block, "wall_s": wall_s, "instructions": instructions}


def test_per_request_cancels_the_constant_and_the_idle_rate() -> None:
    per, constant, rate = 1_000_000, 70_000, 250_000  # instructions per request, per segment, per idle second
    segments = []
    for block in range(2):
        for method in si.METHODS:
            for count, wall in ((si.SHORT, 0.1 + block), (si.LONG, 0.9 + 2 * block)):
                segments.append(segment(method, count, block, wall, count * per + constant + rate * wall))
    segments += [segment("idle", 0, block, 3.0, rate * 3.0) for block in range(2)]
    found = si.per_request(segments)
    assert found["idle_per_s"] == pytest.approx(rate)
    for method in si.METHODS:
        assert found["values"][method] == pytest.approx([per, per])
        assert all(value > per for value in found["uncorrected"][method])  # what the idle correction removes


def test_only_one_process_may_write_marker_dumps(tmp_path: Path) -> None:
    for name in ("cg.100.out", "cg.100.out.2", "cg.100.out.10", "cg.100.out.1"):
        (tmp_path / name).write_text("summary: 1\n")
    assert [path.name for path in si.segment_dumps(tmp_path)] == ["cg.100.out.1", "cg.100.out.2", "cg.100.out.10"]
    (tmp_path / "cg.200.out.1").write_text("summary: 1\n")
    with pytest.raises(si.MeasurementBroken):
        si.segment_dumps(tmp_path)


def test_apps_are_the_reference_its_twin_and_the_approaches() -> None:
    names = si.apps()
    assert names[:2] == [registry.reference(), si.AA]
    recommended = {v.name for v in registry.VARIANTS if v.category == registry.APPROACH} - {registry.reference()}
    assert set(names[2:]) == recommended


def test_bad_usage_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    from scripts import cli

    with pytest.raises(SystemExit) as exited:
        cli.main(["server_instructions", "--parallel", "0"])
    assert exited.value.code == 2 and "--parallel" in capsys.readouterr().err
