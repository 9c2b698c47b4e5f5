"""The report's "Behind a reverse proxy" section, from a summary's front grid alone."""

from __future__ import annotations

from scripts.report import proxy


def cell(variant: str, server: str, front: str, scenario: str, leak: int, cross: int) -> dict:
    return {"variant": variant, "server": server, "front": front, "scenario": scenario, "requests": 100} | {
        "leak": leak,
        "cross_client": cross,
    }


def test_the_section_sums_scenarios_per_front_and_is_absent_without_a_proxy_run() -> None:
    grid = [
        cell("v", "uvloop-httptools", "direct", "get", 0, 0),
        cell("v", "uvloop-httptools", "nginx", "get", 5, 2),
        cell("v", "uvloop-httptools", "nginx", "stream", 7, 3),
        cell("v", "uvloop-httptools-reset", "nginx", "get", 0, 0),
    ]
    lines = proxy.section({"front_grid": grid})
    assert lines[0] == "## Behind a reverse proxy"
    assert "| approach | server | direct | nginx |" in lines
    assert "| `v` | `uvloop-httptools` | 0 / 0 / 100 | 5 / 12 / 200 |" in lines
    assert "| `v` | `uvloop-httptools-reset` | - | 0 / 0 / 100 |" in lines
    assert proxy.section({"front_grid": grid[:1]}) == [] and proxy.section(None) == []
